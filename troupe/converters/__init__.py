"""Converters: one module per source format, found by name on the filesystem.

Each module `troupe/converters/<name>.py` defines:
    Options                      a troupe.schema.SourceOptions subclass: the keys it reads from
                                 `troupe.source`
    read(options, ctx)           -> ReadResult: story lines for the character builder, rejected
                                 records with reasons, the source files read
    source_files(options, ctx)   -> the input files the dataset depends on (for staleness checks)
and keeps its parsing pure (no I/O) so it can be tested one example in, exact records out.
Modules whose name starts with '_' are helpers, not converters.
"""

import importlib
import pkgutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from troupe.errors import TroupeError
from troupe.project import SLUG_RE, did_you_mean
from troupe.records import Line, Reject, Sample


@dataclass(frozen=True)
class ReadContext:
    """What a converter may touch: the project root (inputs are relative to it), its download cache,
    the recipe's link list (recipes/<slug>.urls.txt, troupe.layout) and system prompt (converters of
    ready conversations make it the one they carry)."""

    root: Path
    cache_dir: Path
    links: Path | None = None
    system_prompt: str = ""


@dataclass
class ReadResult:
    lines: list[Line]  # story lines, for the character dataset builder …
    rejects: list[Reject]
    sources: list[dict]  # {"path", "sha256"} of every input read, paths relative (never machine paths)
    missing: list[dict] = field(default_factory=list)  # inputs that could not be fetched (allow_missing)
    samples: list[Sample] = field(default_factory=list)  # … or ready samples (conversations, Q/A, texts)
    adjusted: Counter = field(default_factory=Counter)  # kept records changed on the way, by what changed

    @property
    def records(self) -> int:
        """Records read, good and rejected: the base of the reject rate."""
        return len(self.lines) + len(self.samples) + len(self.rejects)


def available() -> list[str]:
    """Every converter module name, from the filesystem."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if SLUG_RE.match(m.name))


def load(name: str) -> ModuleType:
    """The converter module `name`, or an error listing the known ones."""
    known = available()
    if not isinstance(name, str) or name not in known:
        raise TroupeError(f"unknown converter '{name}'{did_you_mean(str(name), known)}; known: {', '.join(known)}")
    return importlib.import_module(f"{__name__}.{name}")
