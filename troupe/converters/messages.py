"""OpenAI-style chat records (`{"messages": [{"role", "content"}]}`) as JSON lines or a JSON array.

    troupe.source: {converter: messages, files: [recipes/elderly_companion/chats.jsonl]}

Roles must be system/user/assistant, texts non-empty, at least one assistant turn; consecutive
turns of one side are merged (or the record rejected: `alternation: reject`); the recipe's system
prompt replaces each record's (`system: replace`), so training and inference use the same one.
"""

from troupe.converters import ReadResult
from troupe.converters._chat import ChatOptions as Options
from troupe.converters._chat import read_conversations, source_files  # noqa: F401 (the registry calls source_files)


def read(options: Options, ctx) -> ReadResult:
    return read_conversations(options, ctx, "messages", "role", "content")
