"""Conversations from files that already hold them (chat JSONL, ShareGPT): one pure function that
turns a record's turns into clean messages, or says why the record cannot be used.

A turn's text is a string or a list of text parts (OpenAI's {"type": "text", "text"}, LLaMA-Factory's
{"type": "text", "value"}), joined by newlines; a record with an image or other non-text part is
rejected, since its words refer to something the model would never see.

A conversation that opens with the character's turn (a greeting: the norm in role-play exports) is
kept by default, the greeting becoming the first assistant turn after the system prompt, and counted
in the manifest (counts.adjusted.greeting_kept). The chat templates of the shipped conversation
recipes render that order (Qwen3.5, Llama 3.1, Gemma 4, ChatML; Axolotl's chat_template strategy
finds each turn by rendering, so the greeting is trained like any reply). The Gemma 2/3, Cohere and
Mistral v1–v3 templates refuse an assistant turn before a user turn: use `greeting: drop` there
(counted as greeting_dropped), or `greeting: reject`.
"""

from typing import Literal

from pydantic import Field

from troupe.chat import ROLES, conversation
from troupe.converters import ReadResult
from troupe.converters._files import collect_samples, json_records, local_files
from troupe.schema import SourceOptions
from troupe.text import content_text


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
    greeting: Literal["keep", "drop", "reject"] = Field(
        "keep",
        description="a conversation opening with an assistant turn (a greeting): keep it as the first assistant "
        "turn after the system prompt, drop that turn, or reject the record",
    )


def clean_turns(
    turns: object, role_key: str, content_key: str, options: ChatOptions, system_prompt: str
) -> tuple[list[dict], list[str]]:
    """(messages, what was adjusted): known roles, non-empty text, system first, user/assistant
    alternating, a greeting kept or dropped, at least one reply, and the recipe's system prompt
    applied; ValueError with the reason otherwise."""
    if not isinstance(turns, list) or not turns:
        raise ValueError("no turns")
    messages = [_message(turn, i, role_key, content_key) for i, turn in enumerate(turns)]
    system = [m for m in messages[:1] if m["role"] == "system"]
    dialogue = messages[len(system) :]
    if any(m["role"] == "system" for m in dialogue):
        raise ValueError("a system turn after the first turn")
    dialogue, adjusted = _opening(_alternating(dialogue, options.alternation), options.greeting)
    if not any(m["role"] == "assistant" for m in dialogue):
        raise ValueError("no assistant turn")
    return _with_system(system, dialogue, system_prompt, options.system), adjusted


def _message(turn: object, index: int, role_key: str, content_key: str) -> dict:
    if not isinstance(turn, dict):
        raise ValueError(f"turn {index} is not an object")
    role = turn.get(role_key)
    if role not in ROLES:
        raise ValueError(f"turn {index} has unknown role {role!r} (known: {', '.join(ROLES)})")
    try:
        content = content_text(turn.get(content_key))
    except ValueError as exc:
        raise ValueError(f"turn {index} ({role}): {exc}") from None
    if not content or not content.strip():
        raise ValueError(f"turn {index} ({role}) has no text")
    return {"role": ROLES[role], "content": content.strip()}


def _opening(dialogue: list[dict], mode: str) -> tuple[list[dict], list[str]]:
    """The dialogue with a greeting (an assistant turn before any user turn) kept, dropped or refused."""
    if not dialogue or dialogue[0]["role"] != "assistant":
        return dialogue, []
    if mode == "reject":
        raise ValueError("the conversation opens with an assistant turn (troupe.source.greeting: keep trains on it)")
    return (dialogue[1:], ["greeting_dropped"]) if mode == "drop" else (dialogue, ["greeting_kept"])


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


def _with_system(system: list[dict], dialogue: list[dict], prompt: str, mode: str) -> list[dict]:
    """The dialogue opened by the recipe's prompt (replace), by the record's own system turn or else
    the recipe's (inject), or by the record's own (keep, or a recipe without a prompt)."""
    if mode == "replace" and prompt:
        return conversation(prompt, dialogue)
    return conversation(prompt if mode == "inject" else "", [*system, *dialogue])


def source_files(options: ChatOptions, ctx) -> list:
    return local_files(options.files, ctx.root)


def read_conversations(options: ChatOptions, ctx, field: str, role_key: str, content_key: str) -> ReadResult:
    """Every record of every file as a conversation: `record[field]` holds the turns."""

    def make(record: object) -> dict:
        turns = record.get(field) if isinstance(record, dict) else None
        messages, adjusted = clean_turns(turns, role_key, content_key, options, ctx.system_prompt)
        return {"messages": messages, "adjusted": adjusted}

    return collect_samples(options.files, ctx, lambda path, source: json_records(path, source, field), make)
