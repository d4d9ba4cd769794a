"""Plays and screenplays → speaker lines, for the same character dataset builder as the stories.

    troupe.source: {converter: script, files: [recipes/keeper/play.txt]}

Two layouts (`layout: auto` picks by the text):
- block: the speaker's name alone on a line ending in a colon, the speech on the lines below, a
  blank line between speeches (the tinyshakespeare layout). A verse line ending in a colon inside
  a speech is not a speaker: a name heads a speech only after a blank line, or when it is written
  in capitals or has already headed a speech.
- inline: `NAME: line` or `名字：台词` on one line.
Lines in brackets (`[Exit]`, `（风起）`) are narration; group speakers such as `All` are speakers.
A line holding a character that is not text (a byte that is not UTF-8, NUL) is a reject with its
line number and is left out of its speech; the rest of the play is read.
"""

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from troupe.converters import ReadResult
from troupe.converters._files import local_files, read_text
from troupe.files import sha256_file
from troupe.project import relative_to_root
from troupe.records import Line, Reject
from troupe.schema import SourceOptions
from troupe.text import fold_whitespace, split_lines, text_problem

HEADER_RE = re.compile(r"^(?P<name>[^:：]{1,40})[:：]$")
INLINE_RE = re.compile(r"^(?P<name>[^:：]{1,30})[:：]\s*(?P<text>\S.*)$")
STAGE_RE = re.compile(r"^[\[(（【].*[\])）】]$")
NOT_IN_NAMES = set(',;!?，。；！？"“”…—[]()（）')


class Options(SourceOptions):
    files: list[str] = Field(min_length=1, description="plain-text play files, relative to the project root")
    layout: Literal["auto", "block", "inline"] = "auto"


def is_name(name: str) -> bool:
    """'First Citizen', 'MENENIUS', 'All', '守灯人' yes; a verse line ('Rebell'd against the belly,
    thus accused it') no."""
    words = name.split()
    return 1 <= len(words) <= 4 and not NOT_IN_NAMES & set(name) and not name[0].islower()


def detect_layout(lines: list[str]) -> str:
    headers = sum(bool(HEADER_RE.match(s.strip())) and is_name(s.strip()[:-1]) for s in lines)
    return "block" if headers >= 2 else "inline"


def parse_script(text: str, story: str, source: str, layout: str = "auto", skip: frozenset = frozenset()) -> list[Line]:
    """Every speech (and bracketed direction) of one play as a Line, numbered by its first line;
    the line numbers in `skip` (rejected lines) are left out."""
    lines = split_lines(text)
    layout = detect_layout(lines) if layout == "auto" else layout
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if number not in skip]
    return _block(numbered, story, source) if layout == "block" else _inline(numbered, story, source)


def _block(lines: list[tuple[int, str]], story: str, source: str) -> list[Line]:
    out, speakers = [], set()
    speaker, buffer, start, previous_blank = None, [], 0, True
    for number, raw in lines:
        text = raw.strip()
        header = HEADER_RE.match(text)
        name = header and header["name"].strip()
        if header and is_name(name) and (previous_blank or name in speakers or name.isupper()):
            out += _speech(speaker, buffer, story, start, source)
            speaker, buffer, start = name, [], number + 1
            speakers.add(name)
        elif not text or STAGE_RE.match(text):
            out += _speech(speaker, buffer, story, start, source)
            out += _speech(None, [text] if text else [], story, number, source)
            speaker, buffer, start = (speaker if text else None), [], number + 1
        else:
            buffer.append(text)
        previous_blank = not text
    return out + _speech(speaker, buffer, story, start, source)


def _speech(speaker: str | None, buffer: list[str], story: str, start: int, source: str) -> list[Line]:
    text = fold_whitespace(" ".join(buffer))
    return [Line(speaker, text, "speech" if speaker else "narration", story, start, source)] if text else []


def _inline(lines: list[tuple[int, str]], story: str, source: str) -> list[Line]:
    out = []
    for number, raw in lines:
        text = raw.strip()
        match = INLINE_RE.match(text)
        if match and is_name(match["name"].strip()) and not STAGE_RE.match(text):
            out.append(Line(match["name"].strip(), fold_whitespace(match["text"]), "speech", story, number, source))
        elif text:
            out.append(Line(None, fold_whitespace(text), "narration", story, number, source))
    return out


def source_files(options: Options, ctx) -> list[Path]:
    return local_files(options.files, ctx.root)


def line_rejects(text: str, source: str) -> list[Reject]:
    """A reject for each line holding a character that is not text, with its line number."""
    problems = ((number, text_problem(line)) for number, line in enumerate(split_lines(text), start=1))
    return [Reject(source, number, problem) for number, problem in problems if problem]


def read(options: Options, ctx) -> ReadResult:
    lines, rejects, sources = [], [], []
    for path in local_files(options.files, ctx.root):
        source = relative_to_root(path, ctx.root)
        sources.append({"path": source, "sha256": sha256_file(path)})
        text = read_text(path)
        bad = line_rejects(text, source)
        rejects += bad
        lines += parse_script(text, path.stem, source, options.layout, frozenset(r.index for r in bad))
    return ReadResult(lines=lines, rejects=rejects, sources=sources)
