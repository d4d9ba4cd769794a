"""Small file helpers: atomic writes of files and of whole folders (a crash never leaves half of
either) and hashing."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from troupe.errors import TroupeError
from troupe.redact import redacted


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


def read_utf8(path: Path, max_bytes: int | None = None, what: str = "a text file") -> str:
    """A regular UTF-8 file a user gave (a recipe, a shared file, a link list), at most `max_bytes`
    (a BOM dropped); anything else is a TroupeError naming the file — and for bytes that are not
    UTF-8, the line and the byte."""
    try:
        if not path.is_file():
            raise TroupeError(f"{path}: {'is not a regular file' if path.exists() else 'no such file'}")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise TroupeError(f"{path}: larger than {max_bytes} bytes; not {what}")
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise TroupeError(
            f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02X}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise TroupeError(f"{path}: cannot be read ({exc.strerror})") from None


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
    """A record troupe writes (a manifest, a lock, metrics, provenance), secrets redacted (troupe.redact);
    data (jsonl_text) is written as it is."""
    return _dumps(redacted(obj), indent=2) + "\n"


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


def new_dir_beside(dest: Path) -> Path:
    """An empty folder next to `dest` to build its replacement in (same filesystem: renames are
    atomic); leftovers of a killed build are removed first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for leftover in dest.parent.glob(f".{dest.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))


def replace_dir(built: Path, dest: Path) -> None:
    """Put a folder (or a file) built beside `dest`, e.g. by `new_dir_beside`, in place of `dest`: the
    old one is renamed aside, the new one renamed in, then the old one deleted. A crash in between
    leaves no `dest` — missing, never a mixture of old and new files."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        remove(old)
        os.replace(dest, old)
    os.replace(built, dest)
    remove(old)


def remove(path: Path) -> None:
    """Delete a file or a whole folder, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
