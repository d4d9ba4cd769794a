"""Reading local input files for converters: glob patterns relative to the project root, text in
which bytes that are not UTF-8 become a reject naming their place (never a crash), and records
from JSON arrays, JSON lines, or JSON objects pretty-printed one after another.

    records = json_records(Path("chats.jsonl"), "chats.jsonl", field="messages")   # (position, record) | Reject

A JSON line that does not parse, or a record that gives a key twice (json would keep the last value
and drop the others), is one reject. An array or pretty-printed file that cannot be read to the end
fails, naming file:line:column, because what it lost cannot be counted.
"""

import glob
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from troupe.converters import ReadResult
from troupe.errors import TroupeError
from troupe.files import sha256_file
from troupe.project import relative_to_root
from troupe.records import Reject, Sample
from troupe.text import split_lines, text_problem

MAX_DEPTH = 64  # nesting levels a record may have: a chat record has 4; deeper is not data troupe reads


def local_files(patterns: list[str], root: Path, key: str = "troupe.source.files") -> list[Path]:
    """The files the recipe names, sorted; a pattern that matches nothing, or a match that leads out
    of the project through a link, is an error."""
    found: set[Path] = set()
    for pattern in patterns:
        matches = [Path(p) for p in glob.glob(str(root / pattern), recursive=True) if Path(p).is_file()]
        if not matches:
            raise TroupeError(f"{key}: '{pattern}' matches no file under {root}")
        for match in matches:
            if not match.resolve().is_relative_to(root.resolve()):
                raise TroupeError(
                    f"{key}: '{pattern}' matches {relative_to_root(match, root)}, which leads outside the project "
                    "through a link; copy the file into the project instead"
                )
        found.update(matches)
    return sorted(found)


def read_text(path: Path) -> str:
    """The file as UTF-8 text (a BOM dropped). Bytes that are not UTF-8 (a Latin-1 or GBK line) stay
    as surrogate escapes U+DC80–U+DCFF, which `text_problem` names: the record holding them is one
    reject with its place, and the rest of the file is read."""
    return path.read_bytes().decode("utf-8-sig", "surrogateescape")


# ---- JSON ----------------------------------------------------------------------------------------


class LongInteger(str):
    """An integer with more digits than Python converts (sys.get_int_max_str_digits, 4300), kept as
    its digits so that only the record holding it is rejected."""


def _integer(digits: str) -> int | LongInteger:
    try:
        return int(digits)
    except ValueError:
        return LongInteger(digits)


class RepeatedKeys(dict):
    """A JSON object that gives a key more than once (json would keep the last value and drop the
    rest without a word), kept with the keys named, so that the record holding it is rejected."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict:
    found = dict(pairs)
    if len(found) < len(pairs):
        found = RepeatedKeys(pairs)
        found.repeated = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    return found


DECODER = json.JSONDecoder(parse_int=_integer, object_pairs_hook=_object)


def parse_json(text: str) -> Any:
    """One JSON value; ValueError says why it cannot be read (broken, or nested too deeply)."""
    try:
        return DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not readable JSON: nested too deeply") from None


def record_problem(record: Any) -> str | None:
    """Why a parsed record is unusable whatever its fields, with the key path: a character that is
    not text (`text_problem`), an integer too long to read, a key given twice, or nesting deeper
    than MAX_DEPTH."""
    stack = [(record, ())]
    while stack:
        value, path = stack.pop()
        where = ".".join(path) or "record"
        if len(path) > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, LongInteger):
            return f"{where}: an integer of {len(value)} digits (more than Python reads)"
        if isinstance(value, str) and (problem := text_problem(value)):
            return f"{where}: {problem}"
        if isinstance(value, RepeatedKeys):
            return f"{where}: key '{value.repeated[0]}' is given twice (one of its values would be lost)"
        if isinstance(value, dict):
            if problem := next(filter(None, map(text_problem, value)), None):
                return f"{where}: a key has {problem}"
            stack += reversed([(v, (*path, str(k))) for k, v in value.items()])
        elif isinstance(value, list):
            stack += reversed([(v, (*path, str(i))) for i, v in enumerate(value)])
    return None


def json_records(path: Path, source: str, field: str | None = None) -> list[tuple[int, Any] | Reject]:
    """(position, record) for each record of a JSON array (position: the index), of JSON lines (the
    line number), or of JSON objects pretty-printed one after another (the line each starts on); a
    JSON line that does not parse is a Reject. `field` is the key each record holds: one object
    without it that wraps a list of objects is an error naming that list."""
    text = read_text(path)
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return []
    if text[start] == "[":
        return [(index, value) for index, _, value in _values(text, start + 1, source, in_array=True)]
    if _pretty_printed(text, start):
        records = [(line, value) for _, line, value in _values(text, start, source, in_array=False)]
        print(f"{source}: {len(records)} pretty-printed JSON record(s), not one per line: read them as records")
    else:
        records = list(_json_lines(text, source))
    if field and len(records) == 1 and not isinstance(records[0], Reject):
        _refuse_wrapper(records[0][1], source, field)
    return records


def _json_lines(text: str, source: str) -> Iterator[tuple[int, Any] | Reject]:
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            yield number, parse_json(line)
        except ValueError as exc:
            yield Reject(source, number, f"line is {exc}", line[:200])


def _pretty_printed(text: str, start: int) -> bool:
    """True when the first JSON value spans several lines (or the first line is a lone '{'): one
    object per line it is not, whatever the file is called."""
    if text[start:].split("\n", 1)[0].strip() == "{":
        return True
    try:
        _, end = DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return False
    return "\n" in text[start:end]


def _values(text: str, pos: int, source: str, in_array: bool) -> Iterator[tuple[int, int, Any]]:
    """(index, line, value) for each JSON value from `pos`: the items of an array (after its '['),
    or values written one after another. Anything unreadable is a TroupeError naming the place."""
    index, line, counted = 0, 1, 0
    pos = _skip_space(text, pos)
    while pos < len(text) and not (in_array and text[pos] == "]" and index == 0):
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            value, end = DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise _unreadable(text, exc.pos, source, index, exc.msg) from None
        except RecursionError:
            raise _unreadable(text, pos, source, index, "nested too deeply") from None
        yield index, line, value
        index, pos = index + 1, _skip_space(text, end)
        if in_array and text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif in_array and not text.startswith("]", pos):
            raise _unreadable(text, pos, source, index, "expected ',' or ']' after a record")
        elif in_array:
            break
    if in_array and not text.startswith("]", pos):
        raise _unreadable(text, pos, source, index, "the array is never closed")
    if in_array and text[pos + 1 :].strip():
        raise _unreadable(text, _skip_space(text, pos + 1), source, index, "text after the end of the array")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _unreadable(text: str, at: int, source: str, read: int, why: str) -> TroupeError:
    """The error for a file that cannot be parsed to the end: where, why, and how much came before."""
    line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    truncated = at >= len(text.rstrip()) or why.startswith("Unterminated string")
    what = "the file is truncated" if truncated else f"not readable JSON ({why})"
    return TroupeError(
        f"{source}:{line}:{column}: {what}; {read} complete record(s) come before this point, and how many "
        "follow cannot be counted: repair the file or export it again"
    )


def _refuse_wrapper(record: Any, source: str, field: str) -> None:
    """A file holding one object such as {"data": [record, …]}: its records are named, not read as
    one bad record."""
    if not isinstance(record, dict) or field in record:
        return
    lists = [k for k, v in record.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    if len(lists) == 1:
        raise TroupeError(
            f"{source}: one JSON object without '{field}' whose '{lists[0]}' holds {len(record[lists[0]])} "
            f"objects: if those are the records, give troupe that list as a JSON array or JSON lines"
        )


# ---- samples ---------------------------------------------------------------------------------------


def collect_samples(patterns: list[str], ctx, records_of: Callable, make: Callable) -> ReadResult:
    """The I/O edge shared by converters of ready samples: for each file, each record from
    `records_of(path, source)` goes through the pure `make(record) -> Sample fields`; an unusable
    record or a ValueError makes it a counted Reject with the reason, never a crash or a silent drop.
    `make` may return "adjusted": [what was changed in a kept record], counted in the manifest."""
    result = ReadResult(lines=[], rejects=[], sources=[])
    for path in local_files(patterns, ctx.root):
        source = relative_to_root(path, ctx.root)
        result.sources.append({"path": source, "sha256": sha256_file(path)})
        for item in records_of(path, source):
            sample = item if isinstance(item, Reject) else _sample(*item, source, make, result)
            if isinstance(sample, Reject):
                result.rejects.append(sample)
            else:
                result.samples.append(sample)
    return result


def _sample(position: int, record: Any, source: str, make: Callable, result: ReadResult) -> Sample | Reject:
    if problem := record_problem(record):
        return Reject(source, position, problem)  # the record itself may not even be writable
    try:
        fields = make(record)
    except ValueError as exc:
        return Reject(source, position, str(exc), record)
    result.adjusted.update(fields.pop("adjusted", ()))
    meta = {"source": source, "index": position, "story": f"{source}#{position}", **fields.pop("meta", {})}
    return Sample(meta=meta, **{"messages": None, **fields})
