"""Small file helpers: atomic writes (a crash never leaves half a file) and hashing."""

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from troupe.errors import TroupeError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_utf8(path: Path) -> str:
    """A text file a user gave (a recipe, a shared file); not UTF-8 is a TroupeError naming the file,
    the line and the byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise TroupeError(
            f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02X}); save the file as UTF-8"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _dumps(obj, **options) -> str:
    """JSON with UTF-8 kept readable; text that cannot be UTF-8 (a lone surrogate: an undecodable
    byte in a rejected record) is written as its \\u escape instead of failing the write."""
    text = json.dumps(obj, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, **options)
    return text


def jsonl_text(records: Iterable[dict]) -> str:
    """One JSON object per line, UTF-8 kept readable, stable across machines."""
    return "".join(_dumps(r) + "\n" for r in records)


def json_text(obj) -> str:
    return _dumps(obj, indent=2) + "\n"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
