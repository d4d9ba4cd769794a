"""Classical Chinese poems in the chinese-poetry layout → completion texts or instructions (seed 004).

    troupe.source: {converter: poetry, files: [recipes/tang_poetry/poems.json], simplified: true}

Each record has `paragraphs` (the lines), a `title` (or, for ci, a tune name in `rhythmic`), and an
`author` (or the recipe's `author`, for collections of one poet such as 曹操诗集). `form: completion`
writes `{"text": "title\\nauthor\\nbody"}` for Axolotl's `type: completion`; `form: instruction` writes
a user request ("write a poem titled X in the style of Y") and the poem as the reply. Traditional
characters become simplified with OpenCC when `simplified: true`.
"""

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field

from troupe.chat import conversation
from troupe.converters import ReadResult
from troupe.converters._files import collect_samples, json_records, local_files
from troupe.schema import SourceOptions


class Options(SourceOptions):
    files: list[str] = Field(min_length=1, description="chinese-poetry JSON files, relative to the project root")
    author: str | None = Field(None, description="the author of records that name none")
    form: Literal["completion", "instruction"] = "completion"
    simplified: bool = Field(False, description="convert traditional characters to simplified (OpenCC t2s)")
    instruction: str = Field("写一首题为《{title}》的诗，仿{author}的风格。", description="form: instruction")


@functools.cache
def to_simplified():
    import opencc

    return opencc.OpenCC("t2s").convert


def poem_parts(record: object, options: Options) -> tuple[str, str, str]:
    """(title, author, body with one line per paragraph); ValueError says what is missing."""
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    title = record.get("title") or record.get("rhythmic")
    author = record.get("author") or options.author
    paragraphs = record.get("paragraphs")
    if (
        not isinstance(paragraphs, list)
        or not paragraphs
        or not all(isinstance(p, str) and p.strip() for p in paragraphs)
    ):
        raise ValueError("'paragraphs' is missing, empty or not a list of lines")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("no 'title' or 'rhythmic'")
    if not isinstance(author, str) or not author.strip():
        raise ValueError("no 'author' (set troupe.source.author for a one-poet collection)")
    parts = (title.strip(), author.strip(), "\n".join(p.strip() for p in paragraphs))
    return tuple(to_simplified()(part) for part in parts) if options.simplified else parts


def poem_sample(record: object, options: Options, system_prompt: str) -> dict:
    """Sample fields for one poem: {"text", "meta": {"prompt"}} or {"messages"}."""
    title, author, body = poem_parts(record, options)
    if options.form == "completion":
        prompt = f"{title}\n{author}\n"
        return {"text": prompt + body, "meta": {"prompt": prompt}}
    request = options.instruction.replace("{title}", title).replace("{author}", author)
    turns = [{"role": "user", "content": request}, {"role": "assistant", "content": body}]
    return {"messages": conversation(system_prompt, turns)}


def source_files(options: Options, ctx) -> list[Path]:
    return local_files(options.files, ctx.root)


def read(options: Options, ctx) -> ReadResult:
    return collect_samples(
        options.files,
        ctx,
        lambda path, source: json_records(path, source, field="paragraphs"),
        lambda record: poem_sample(record, options, ctx.system_prompt),
    )
