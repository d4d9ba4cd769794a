"""What converters produce: story lines (for the character dataset builder) and rejects."""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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
