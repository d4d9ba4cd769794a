"""ShareGPT conversations (`{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}`), as a
JSON array or JSON lines; `user`/`assistant` are accepted too. Mapped to messages with the same
checks as the `messages` converter (consecutive turns of one side merged).

    troupe.source: {converter: sharegpt, files: [recipes/sherlock/conversations.json]}
"""

from troupe.converters import ReadResult
from troupe.converters._chat import ChatOptions as Options
from troupe.converters._chat import read_conversations, source_files  # noqa: F401 (the registry calls source_files)


def read(options: Options, ctx) -> ReadResult:
    return read_conversations(options, ctx, "conversations", "from", "value")
