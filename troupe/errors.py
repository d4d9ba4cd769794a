"""User-facing errors: printed as one clear message by the CLI, never as a traceback."""

from dataclasses import dataclass
from enum import Enum

from troupe.text import printable


class TroupeError(Exception):
    """A mistake the user can fix (bad name, bad input, failed step). The message says how."""


class Kind(Enum):
    """What sort of problem a finding is: what the check does next is decided on this, never on
    the message's words."""

    MISTAKE = "mistake"  # a key or value to fix
    UNSAFE = "unsafe"  # the safety policy refuses what the key does (troupe.policy)
    UNREVIEWED = "unreviewed"  # the safety policy: a key nobody has reviewed (or a typo)
    UNKNOWN_KEY = "unknown key"  # Axolotl would silently drop it
    MISSING_INPUT = "missing input"  # a file an earlier step builds (the dataset, a local base model)


@dataclass(frozen=True)
class Problem:
    """One finding of `troupe check`: where it is, what is wrong, how to fix it, and its kind."""

    file: str
    key: str
    problem: str
    fix: str = ""
    kind: Kind = Kind.MISTAKE

    @property
    def refused(self) -> bool:
        """The safety policy refuses the recipe for this (nothing it names may be imported)."""
        return self.kind in (Kind.UNSAFE, Kind.UNREVIEWED)

    def __str__(self) -> str:
        # a file or key name is one line: a line break in one (a quoted YAML key) must not start a
        # line of its own that reads like troupe's (the CLI escapes every other control when it prints)
        text = f"{printable(self.file, keep='')}: {printable(self.key, keep='')}: {self.problem}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


class CheckFailed(TroupeError):
    """Raised when a recipe has problems; carries all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s):"] + [f"  {p}" for p in problems]
        super().__init__("\n".join(lines))
