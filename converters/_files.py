"""Reading local input files for converters: glob patterns relative to the project root, and
records from JSON arrays or JSON lines where one bad line is a reject, not a crash."""

import glob
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from converters import ReadResult
from troupe.errors import TroupeError
from troupe.files import sha256_file
from troupe.project import relative_to_root
from troupe.records import Reject, Sample


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


def json_records(path: Path, source: str) -> Iterator[tuple[int, Any] | Reject]:
    """(position, record) for each record of a JSON array (position = index) or of a JSONL file
    (position = line number); a line that is not JSON, or a file that is neither, yields a Reject."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            yield from enumerate(json.loads(text))
        except json.JSONDecodeError as exc:
            yield Reject(source, None, f"not a valid JSON array: {exc}")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield Reject(source, number, f"line is not valid JSON: {exc}", line[:200])


def collect_samples(patterns: list[str], ctx, records_of: Callable, make: Callable) -> ReadResult:
    """The I/O edge shared by converters of ready samples: for each file, each record from
    `records_of(path, source)` goes through the pure `make(record) -> Sample fields`; a ValueError
    makes it a counted Reject with the reason, never a crash or a silent drop."""
    samples, rejects, sources = [], [], []
    for path in local_files(patterns, ctx.root):
        source = relative_to_root(path, ctx.root)
        sources.append({"path": source, "sha256": sha256_file(path)})
        for item in records_of(path, source):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            position, record = item
            try:
                fields = make(record)
            except ValueError as exc:
                rejects.append(Reject(source, position, str(exc), record))
                continue
            meta = {"source": source, "index": position, "story": f"{source}#{position}", **fields.pop("meta", {})}
            samples.append(Sample(meta=meta, **{"messages": None, **fields}))
    return ReadResult(lines=[], rejects=rejects, sources=sources, samples=samples)
