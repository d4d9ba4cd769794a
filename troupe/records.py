"""What converters produce: story lines (for the character dataset builder), ready samples (for
sources that are already conversations, Q/A pairs or texts), and rejects."""

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from troupe.chat import as_sharegpt

Kind = Literal["speech", "narration", "onscreen", "choice"]


@dataclass(frozen=True)
class Line:
    """One line of a story, in order: who said it (None for narration and on-screen text) and what."""

    speaker: str | None
    text: str
    kind: Kind
    story: str
    index: int
    source: str
    meta: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return {"speaker": self.speaker, "text": self.text, "kind": self.kind, "story": self.story, "index": self.index}


@dataclass(frozen=True)
class Reject:
    """A record a converter could not use, kept with the reason (written to rejects.jsonl)."""

    source: str
    index: int | None
    reason: str
    record: Any = None

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def place(self) -> str:
        """Where the record is: `file#position` (a line number or an index, as in samples' meta)."""
        return self.source if self.index is None else f"{self.source}#{self.index}"


def reject_summary(rejects: list[Reject], top: int = 3) -> str:
    """The most frequent reasons with their counts and one example place each, one per line:
    reasons differing only in numbers (line 4, turn 2) count as one."""
    groups: dict[str, list[Reject]] = {}
    for reject in rejects:
        groups.setdefault(re.sub(r"\d+", "N", reject.reason), []).append(reject)
    shown = Counter({key: len(members) for key, members in groups.items()}).most_common(top)
    lines = [f"  {n:>6} × {groups[key][0].reason} (e.g. {groups[key][0].place})" for key, n in shown]
    rest = len(rejects) - sum(n for _, n in shown)
    return "\n".join(lines + ([f"  {rest:>6} × other reasons"] if rest else []))


@dataclass(frozen=True)
class Sample:
    """One training example: a conversation (`messages`), or a plain text for `type: completion`."""

    messages: list[dict] | None
    meta: dict
    text: str | None = None

    @property
    def replies(self) -> list[str]:
        """What is trained: the assistant turns not marked `train: false`, or the whole text."""
        if self.messages is None:
            return [self.text]
        return [m["content"] for m in self.messages if m["role"] == "assistant" and m.get("train", True)]

    def to_json(self, fmt: str) -> dict:
        """The JSONL record: {"messages"}, {"conversations"} (ShareGPT) or {"text"}, each with "meta"."""
        if fmt == "completion":
            return {"text": self.text, "meta": self.meta}
        if fmt == "sharegpt":
            return {"conversations": as_sharegpt(self.messages), "meta": self.meta}
        return {"messages": self.messages, "meta": self.meta}
