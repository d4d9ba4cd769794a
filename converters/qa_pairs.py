"""Question/answer pairs from CSV, TSV or JSON lines → one user/assistant exchange each (seed
002's style-rewritten answers). Field names are the recipe's.

    troupe.source: {converter: qa_pairs, files: [recipes/leprechaun/qa.csv]}
    troupe.source: {converter: qa_pairs, files: [recipes/yoda/qa.jsonl], question_field: q, answer_field: a}

A row with a stray quote, the wrong number of columns, or an empty question or answer is a
counted reject; parsing resumes on the next line, so one bad row never swallows the rest.
"""

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from converters import ReadResult
from converters._files import collect_samples, json_records, local_files
from troupe.records import Reject
from troupe.schema import SourceOptions

DELIMITERS = {"csv": ",", "tsv": "\t"}


class Options(SourceOptions):
    files: list[str] = Field(min_length=1, description="CSV, TSV or JSONL files, relative to the project root")
    format: Literal["auto", "csv", "tsv", "jsonl"] = Field("auto", description="auto: from the file extension")
    question_field: str = "question"
    answer_field: str = "answer"


def csv_rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line number, row, None) per record, or (line number, None, error) for a record the csv
    module cannot read, after which reading restarts on the following line."""
    lines = text.splitlines(keepends=True)
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


def table_records(text: str, delimiter: str, source: str) -> Iterator[tuple[int, dict] | Reject]:
    """Rows as {header: value} dicts; a row with another number of columns than the header is a Reject."""
    header = None
    for line, row, error in csv_rows(text, delimiter):
        if error or header is None and row is None:
            yield Reject(source, line, error or "unreadable header")
        elif header is None:
            header = row
        elif row and len(row) != len(header):
            yield Reject(source, line, f"{len(row)} columns where the header has {len(header)}", row)
        elif row:
            yield line, dict(zip(header, row, strict=True))


def records(path: Path, source: str, fmt: str) -> Iterator[tuple[int, dict] | Reject]:
    fmt = fmt if fmt != "auto" else {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix, "csv")
    if fmt == "jsonl":
        return json_records(path, source)
    return table_records(path.read_text(encoding="utf-8-sig"), DELIMITERS[fmt], source)


def pair_messages(record: object, options: Options, system_prompt: str) -> list[dict]:
    """[system?, user, assistant] for one record; ValueError names the missing or empty field."""
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    texts = []
    for field in (options.question_field, options.answer_field):
        value = record.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"'{field}' is missing or empty")
        texts.append(value.strip())
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, {"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]


def source_files(options: Options, ctx) -> list[Path]:
    return local_files(options.files, ctx.root)


def read(options: Options, ctx) -> ReadResult:
    return collect_samples(
        options.files,
        ctx,
        lambda path, source: records(path, source, options.format),
        lambda record: {"messages": pair_messages(record, options, ctx.system_prompt)},
    )
