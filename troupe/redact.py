"""Secrets never reach what troupe writes: the credentials in a URL (https://user:pass@host/) and the
value of every secret troupe reads from the environment (the judge key) are replaced, by value,
wherever they occur — in a shared recipe (its comments, values and link list), in manifests, locks
and other records (`files.json_text`), in the judge's raw records, and in messages the CLI prints.

    redact("base_url: https://bob:hunter2@mirror.example/")  # 'base_url: https://REDACTED@mirror.example/'
    redacted({"raw": "Authorization: Bearer sk-…"})          # every string, keys too, through dicts and lists
"""

import os
import re

SECRET_ENV = ("TROUPE_JUDGE_KEY",)  # the environment variables whose values are secrets
MIN_SECRET_CHARS = 8  # a shorter value would also match ordinary text (a word, a piece of a sha256)
USERINFO_RE = re.compile(r"(?<=://)[^\s/?#@'\"]+@")  # what stands between "scheme://" and "@host"


def secret_values() -> dict[str, str]:
    """Each secret value set in the environment → how it is shown instead ([TROUPE_JUDGE_KEY])."""
    values = {os.environ.get(name) or "": f"[{name}]" for name in SECRET_ENV}
    return {value: shown for value, shown in values.items() if len(value) >= MIN_SECRET_CHARS}


def redact(text: str) -> str:
    for value, shown in secret_values().items():
        text = text.replace(value, shown)
    return USERINFO_RE.sub("REDACTED@", text)


def redacted(data):
    """JSON-like data with every string in it redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redacted(key): redacted(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redacted(value) for value in data]
    return data
