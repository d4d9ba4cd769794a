"""ShareGPT conversations (`{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}`), as a
JSON array or JSON lines; `user`/`assistant` are accepted too. Mapped to messages with the same
checks as the `messages` converter (consecutive turns of one side merged).

    troupe.source: {converter: sharegpt, files: [recipes/sherlock/conversations.json]}
"""

from converters import ReadResult
from converters._chat import ChatOptions, read_conversations
from converters._files import local_files


class Options(ChatOptions):
    pass


def source_files(options: Options, ctx) -> list:
    return local_files(options.files, ctx.root)


def read(options: Options, ctx) -> ReadResult:
    return read_conversations(options, ctx, "conversations", "from", "value")
