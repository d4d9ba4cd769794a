"""User-facing errors: printed as one clear message by the CLI, never as a traceback."""

from dataclasses import dataclass

from troupe.text import printable


class TroupeError(Exception):
    """A mistake the user can fix (bad name, bad input, failed step). The message says how."""


@dataclass(frozen=True)
class Problem:
    """One finding of `troupe check`: where it is, what is wrong, and how to fix it."""

    file: str
    key: str
    problem: str
    fix: str = ""

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
