"""Text helpers shared by converters and the server: whitespace folding (no space left where
Chinese or Japanese text would never have one), the check that keeps unusable characters out of
training data and prompts, message content given as a list of parts, and text made safe to show in
a terminal.

    fold_whitespace("第一行 第二行")                      # '第一行第二行'
    text_problem("caf\\udce9")                            # 'byte 0xE9 at character 4 is not UTF-8 …'
    content_text([{"type": "text", "text": "hi"}])        # 'hi'
    split_lines("a\\r\\nb\\u2028c\\n")                    # ['a', 'b\\u2028c']
    printable("\\x1b[2JOK")                               # '\\\\x1b[2JOK'
"""

import re
import unicodedata

SPACE_RE = re.compile(r"\s+")  # \s includes the full-width space U+3000
SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+(?=[,.!?;:，。！？；：、…）)」』”])")
# Undecodable bytes (read with errors="surrogateescape"), lone surrogates from "\ud800" escapes, and
# control characters other than tab and line breaks: none of them is text a model should learn.
BAD_CHAR_RE = re.compile(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LINE_END_RE = re.compile(r"(\r\n|\r|\n)")
# What a terminal acts on instead of showing: C0 and C1 controls (ESC, CSI …), DEL, bidi overrides and
# marks, line and paragraph separators; and lone surrogates, which a UTF-8 terminal cannot be sent.
TERMINAL_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
TEXT_PART_KEYS = ("text", "value")  # OpenAI's {"type": "text", "text"}; LLaMA-Factory's {"type": "text", "value"}


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def fold_whitespace(text: str) -> str:
    """'  a\\n b ' → 'a b'; '第一行 第二行' → '第一行第二行'; 'Dr.X ,' → 'Dr.X,'."""
    text = SPACE_RE.sub(" ", text).strip()
    text = SPACE_BEFORE_PUNCT_RE.sub("", text)
    return re.sub(
        r"(?<=\S) (?=\S)", lambda m: "" if _is_wide(text[m.start() - 1]) or _is_wide(text[m.start() + 1]) else " ", text
    )


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """Lines split at \\n, \\r\\n and \\r only: str.splitlines also splits at U+2028, U+0085 and form
    feeds, which occur inside real JSON strings and CSV fields."""
    parts = LINE_END_RE.split(text)  # text, line end, text, line end, …, text
    lines = [parts[i] + (parts[i + 1] if keepends and i + 1 < len(parts) else "") for i in range(0, len(parts), 2)]
    return lines if parts[-1] else lines[:-1]


def text_problem(text: str) -> str | None:
    """Why `text` must not be trained on or sent to a model (the first bad character, 1-based), or None."""
    match = BAD_CHAR_RE.search(text)
    if match is None:
        return None
    char, at = match.group(), match.start() + 1
    if "\udc80" <= char <= "\udcff":
        return f"byte 0x{ord(char) - 0xDC00:02X} at character {at} is not UTF-8 (save the file as UTF-8)"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate U+{ord(char):04X} at character {at} (invalid Unicode)"
    return f"control character U+{ord(char):04X} at character {at}"


def content_text(content: object) -> str | None:
    """The text of a message's content: a string, or a list of text parts joined by newlines (as
    vLLM joins them). None when there is no text; ValueError for a part that is not text (an
    image, audio, a file): training on the words without what they refer to would teach the model
    to describe things it never saw."""
    if isinstance(content, str) or content is None:
        return content
    if not isinstance(content, list):
        return None
    texts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            shown = repr(kind) if kind else type(part).__name__
            raise ValueError(f"content part {number} is {shown}, not text (troupe trains on text only)")
        text = next((part[key] for key in TEXT_PART_KEYS if isinstance(part.get(key), str)), None)
        if text is None:
            raise ValueError(f"content part {number} has no 'text' or 'value' string")
        texts.append(text)
    return "\n".join(texts)


def printable(text: str, keep: str = "\n\t") -> str:
    """`text` safe to print: every terminal control but those in `keep` written as Python escapes it
    (ESC → \\x1b, U+202E → \\u202e), so that untrusted text (a key name, a link, a share's file
    name) is shown, never obeyed."""
    return TERMINAL_CONTROL_RE.sub(lambda m: m.group() if m.group() in keep else ascii(m.group())[1:-1], text)
