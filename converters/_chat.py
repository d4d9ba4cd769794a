"""Conversations from files that already hold them (chat JSONL, ShareGPT): one pure function that
turns a record's turns into clean messages, or says why the record cannot be used."""

from typing import Literal

from pydantic import Field

from converters import ReadResult
from converters._files import collect_samples, json_records, local_files
from troupe.schema import SourceOptions

ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


class ChatOptions(SourceOptions):
    files: list[str] = Field(min_length=1, description="JSON lines or JSON array files, relative to the project root")
    system: Literal["replace", "inject", "keep"] = Field(
        "replace",
        description="the recipe's prompt.system: replace every record's system turn with it, inject it where "
        "a record has none, or keep records as they are (training and inference should use the same one)",
    )
    alternation: Literal["merge", "reject"] = Field(
        "merge", description="consecutive turns of one side: merge them into one turn, or reject the record"
    )


def clean_turns(turns: object, role_key: str, content_key: str, options: ChatOptions, system_prompt: str) -> list[dict]:
    """Known roles, non-empty text, system first, user/assistant alternating, at least one reply,
    and the recipe's system prompt applied; ValueError with the reason otherwise."""
    if not isinstance(turns, list) or not turns:
        raise ValueError("no turns")
    messages = [_message(turn, i, role_key, content_key) for i, turn in enumerate(turns)]
    system = [m for m in messages[:1] if m["role"] == "system"]
    dialogue = messages[len(system) :]
    if any(m["role"] == "system" for m in dialogue):
        raise ValueError("a system turn after the first turn")
    dialogue = _alternating(dialogue, options.alternation)
    if not dialogue or dialogue[0]["role"] != "user":
        raise ValueError("the conversation does not start with a user turn")
    if not any(m["role"] == "assistant" for m in dialogue):
        raise ValueError("no assistant turn")
    return _with_system(system, system_prompt, options.system) + dialogue


def _message(turn: object, index: int, role_key: str, content_key: str) -> dict:
    if not isinstance(turn, dict):
        raise ValueError(f"turn {index} is not an object")
    role, content = turn.get(role_key), turn.get(content_key)
    if role not in ROLES:
        raise ValueError(f"turn {index} has unknown role {role!r} (known: {', '.join(ROLES)})")
    if not isinstance(content, str) or not content.strip():
        raise ValueError(f"turn {index} ({role}) has no text")
    return {"role": ROLES[role], "content": content.strip()}


def _alternating(dialogue: list[dict], mode: str) -> list[dict]:
    merged: list[dict] = []
    for message in dialogue:
        if merged and merged[-1]["role"] == message["role"]:
            if mode == "reject":
                raise ValueError(f"two {message['role']} turns in a row")
            merged[-1] = {**merged[-1], "content": merged[-1]["content"] + "\n" + message["content"]}
        else:
            merged.append(message)
    return merged


def _with_system(system: list[dict], prompt: str, mode: str) -> list[dict]:
    if prompt and (mode == "replace" or (mode == "inject" and not system)):
        return [{"role": "system", "content": prompt}]
    return system


def source_files(options: ChatOptions, ctx) -> list:
    return local_files(options.files, ctx.root)


def read_conversations(options: ChatOptions, ctx, field: str, role_key: str, content_key: str) -> ReadResult:
    """Every record of every file as a conversation: `record[field]` holds the turns."""

    def make(record: object) -> dict:
        turns = record.get(field) if isinstance(record, dict) else None
        return {"messages": clean_turns(turns, role_key, content_key, options, ctx.system_prompt)}

    return collect_samples(options.files, ctx, json_records, make)
