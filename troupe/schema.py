"""The `troupe:` block of a recipe, as pydantic models (unknown keys are errors, not dropped).

A recipe's `troupe.source` is checked twice: here for `converter`, then by that converter's own
`Options` model (see troupe/converters/), so every source key is known and typed.

Every number has a ceiling (`le=`) and must be finite, with or without --allow-unsafe: a shared
recipe's `judge_repeats: 100000` or `timeout: .inf` is refused by `troupe check`, never run
(tests/test_hostile_values.py walks every model for a number without one).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from troupe.project import SLUG_RE

MAX_SEED = 2**32 - 1  # what every random generator troupe seeds (random, torch, numpy) accepts
MAX_LINES = 1000  # story lines around one sample
MAX_CHARS = 100_000  # characters of one reply


class StrictModel(BaseModel):
    """Rejects unknown keys (a typo in a recipe is reported, never silently ignored), and infinite
    or NaN numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Character(StrictModel):
    name: str = Field(min_length=1, description="display name, and the speaker name to learn")
    aliases: list[str] = Field(default_factory=list, description="other speaker names of the same character")

    @property
    def names(self) -> list[str]:
        """Every speaker name whose lines are the character's."""
        return [self.name, *[a for a in self.aliases if a != self.name]]


class SourceOptions(StrictModel):
    """Base of every converter's options; `converter` names troupe/converters/<converter>.py."""

    converter: str


class Split(StrictModel):
    train: float = Field(0.8, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    seed: int = Field(42, ge=0, le=MAX_SEED)
    by: Literal["sample", "story"] = "sample"

    @model_validator(mode="after")
    def _fractions_sum_to_one(self):
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class DatasetOptions(StrictModel):
    builder: Literal["context", "scene"] = Field(
        "context", description="context: one reply per sample; scene: multi-turn windows of a story"
    )
    context_lines: int = Field(3, ge=0, le=MAX_LINES, description="story lines before the target shown as context")
    scene_lines: int = Field(12, ge=2, le=MAX_LINES, description="scene builder: story lines per sample, at most")
    min_context_lines: int = Field(1, ge=0, le=MAX_LINES, description="targets with fewer context lines are dropped")
    min_chars: int = Field(2, ge=0, le=MAX_CHARS)
    max_chars: int = Field(300, ge=1, le=MAX_CHARS)
    drop_punctuation_only: bool = Field(True, description="drop targets such as '......' or '——'")
    dedupe: bool = Field(True, description="drop exact duplicate (context, reply) pairs")
    narration_label: str = "旁白"
    onscreen_label: str = "字幕"
    split: Split = Field(default_factory=Split)
    format: Literal["messages", "sharegpt", "completion"] = Field(
        "messages", description="the split files' records: messages, ShareGPT conversations, or plain text"
    )
    reject_threshold: float = Field(0.05, ge=0, le=1, description="fail when more records than this are rejected")


class Prompt(StrictModel):
    system: str = ""
    user_template: str = Field("{context}", description="'{context}' and '{character}' are filled in")

    @model_validator(mode="after")
    def _template_has_context(self):
        if "{context}" not in self.user_template:
            raise ValueError("user_template must contain '{context}'")
        return self


class Evaluate(StrictModel):
    max_new_tokens: int = Field(128, ge=1, le=32_768)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0, le=10)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, gt=0, le=10)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of sampled generation: a rerun gives the same replies")
    batch_size: int = Field(8, ge=1, le=1024)
    limit: int | None = Field(None, ge=1, le=1_000_000, description="evaluate only the first N test samples")
    probes: list[str] | None = Field(None, description="red-team prompts; default: a set in the data's language")
    identity_probes: list[str] | None = Field(
        None, description="questions about who the character is; default: 10 in the data's language"
    )
    identity_words: list[str] | None = Field(
        None, description="words by which a reply answers as the character (any one); default: its names"
    )
    parity_prompts: int = Field(
        4, ge=1, le=100, description="prompts on which merged and base+adapter logits are compared"
    )
    judge_items: int = Field(
        20, ge=1, le=1000, description="test items the optional LLM judge scores (TROUPE_JUDGE_URL)"
    )
    judge_repeats: int = Field(3, ge=1, le=10, description="times the judge scores each item")


class TroupeSpec(StrictModel):
    """The whole `troupe:` block."""

    character: Character
    after: str | None = Field(
        None,
        pattern=SLUG_RE,  # compiled: pydantic then matches with Python's re, which knows \Z
        description="a recipe whose trained adapter this one starts from (two-stage training)",
    )
    source: SourceOptions
    dataset: DatasetOptions = Field(default_factory=DatasetOptions)
    prompt: Prompt = Field(default_factory=Prompt)
    evaluate: Evaluate = Field(default_factory=Evaluate)

    @classmethod
    def parse(cls, block: dict) -> "TroupeSpec":
        """Validate the block; `source` keeps only `converter` here (the converter checks the rest)."""
        source = block.get("source")
        converter_only = {"converter": source.get("converter")} if isinstance(source, dict) else source
        return cls.model_validate({**block, "source": converter_only})
