"""Question/answer pairs from CSV, TSV or JSON lines → one user/assistant exchange each (seed
002's style-rewritten answers). Field names are the recipe's, matched ignoring case and surrounding
spaces (a `Question,Answer` header is read with the default names).

    troupe.source: {converter: qa_pairs, files: [recipes/leprechaun/qa.csv]}
    troupe.source: {converter: qa_pairs, files: [recipes/yoda/qa.jsonl], question_field: q, answer_field: a}

A header without the question or answer column is an error naming the columns it has; one that
names a column twice (each row would lose one of its values) is an error naming it. A row with a
stray quote, the wrong number of columns, an empty question or answer, or a character that is not
text (a byte that is not UTF-8, NUL) is a counted reject; parsing resumes on the next line, so one
bad row never swallows the rest.
"""

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from troupe.chat import conversation
from troupe.converters import ReadResult
from troupe.converters._files import collect_samples, json_records, local_files, read_text
from troupe.errors import TroupeError
from troupe.records import Reject
from troupe.schema import SourceOptions
from troupe.text import split_lines

DELIMITERS = {"csv": ",", "tsv": "\t"}


class Options(SourceOptions):
    files: list[str] = Field(min_length=1, description="CSV, TSV or JSONL files, relative to the project root")
    format: Literal["auto", "csv", "tsv", "jsonl"] = Field("auto", description="auto: from the file extension")
    question_field: str = "question"
    answer_field: str = "answer"


def csv_rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line number, row, None) per record, or (line number, None, error) for a record the csv
    module cannot read, after which reading restarts on the following line."""
    lines = split_lines(text, keepends=True)
    start = 0
    while start < len(lines):
        reader = csv.reader(lines[start:], delimiter=delimiter, strict=True)
        row_start = 1
        try:
            for row in reader:
                yield start + row_start, row, None
                row_start = reader.line_num + 1
            return
        except csv.Error as exc:
            yield start + row_start, None, f"not valid {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}"
            start += row_start


def table_records(text: str, delimiter: str, source: str, fields: tuple = ()) -> Iterator[tuple[int, dict] | Reject]:
    """Rows as {header: value} dicts (line breaks inside a quoted value as \\n, whatever the file
    used); a row with another number of columns than the header is a Reject; a header without one
    of `fields` is an error naming the columns it has."""
    header = None
    for line, row, error in csv_rows(text, delimiter):
        if error or header is None and row is None:
            yield Reject(source, line, error or "unreadable header")
        elif header is None:
            header = _checked_header(row, fields, f"{source}:{line}")
        elif row and len(row) != len(header):
            yield Reject(source, line, f"{len(row)} columns where the header has {len(header)}", row)
        elif row:
            yield line, dict(zip(header, [re.sub(r"\r\n?", "\n", value) for value in row], strict=True))


def _checked_header(header: list[str], fields: tuple, where: str) -> list[str]:
    """The header, if it names each column once (a row would keep one of two same-named values and
    lose the other) and has the fields the recipe reads."""
    if repeated := next((name for name in header if header.count(name) > 1), None):
        raise TroupeError(f"{where}: the header names '{repeated}' twice; give each column its own name")
    missing = [name for name in fields if field_key(header, name) is None]
    if missing:
        names = " and ".join(f"'{name}'" for name in missing)
        raise TroupeError(
            f"{where}: the header has no {names} column (it has: {', '.join(header)}); name the columns "
            "with troupe.source.question_field and answer_field"
        )
    return header


def field_key(keys, name: str) -> str | None:
    """`name` if it is a key, else the one key equal to it ignoring case and surrounding spaces."""
    if name in keys:
        return name
    matches = [key for key in keys if isinstance(key, str) and key.strip().casefold() == name.strip().casefold()]
    return matches[0] if len(matches) == 1 else None


def records(path: Path, source: str, options: Options) -> Iterator[tuple[int, dict] | Reject]:
    fmt = options.format
    fmt = fmt if fmt != "auto" else {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix, "csv")
    if fmt == "jsonl":
        return json_records(path, source)
    fields = (options.question_field, options.answer_field)
    return table_records(read_text(path), DELIMITERS[fmt], source, fields)


def pair_messages(record: object, options: Options, system_prompt: str) -> list[dict]:
    """[system?, user, assistant] for one record; ValueError names the missing or empty field."""
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    texts = []
    for field in (options.question_field, options.answer_field):
        key = field_key(record, field)
        value = record.get(key) if key is not None else None
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"'{field}' is missing or empty")
        texts.append(value.strip())
    return conversation(
        system_prompt, [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]
    )


def source_files(options: Options, ctx) -> list[Path]:
    return local_files(options.files, ctx.root)


def read(options: Options, ctx) -> ReadResult:
    return collect_samples(
        options.files,
        ctx,
        lambda path, source: records(path, source, options),
        lambda record: {"messages": pair_messages(record, options, ctx.system_prompt)},
    )
