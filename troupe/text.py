"""Whitespace folding shared by converters: lines joined, spaces collapsed, and no space left where
Chinese or Japanese text would never have one."""

import re
import unicodedata

SPACE_RE = re.compile(r"\s+")  # \s includes the full-width space U+3000
SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+(?=[,.!?;:，。！？；：、…）)」』”])")


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def fold_whitespace(text: str) -> str:
    """'  a\\n b ' → 'a b'; '第一行 第二行' → '第一行第二行'; 'Dr.X ,' → 'Dr.X,'."""
    text = SPACE_RE.sub(" ", text).strip()
    text = SPACE_BEFORE_PUNCT_RE.sub("", text)
    return re.sub(
        r"(?<=\S) (?=\S)", lambda m: "" if _is_wide(text[m.start() - 1]) or _is_wide(text[m.start() + 1]) else " ", text
    )
