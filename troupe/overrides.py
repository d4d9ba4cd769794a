"""`key=value` overrides from the command line (`make train CHARACTER=x ARGS="max_steps=2"`).

Values are YAML scalars or flow collections (`2`, `true`, `null`, `[a, b]`, `5e-5`); dotted keys
reach into nested mappings and lists (`troupe.source.base_url=…`, `datasets.0.path=…`). Types are
checked afterwards by the same validation a recipe gets. YAML aliases (`*a`) are refused: one value
on a command line never needs them, and one that contains itself (`&a [*a]`) never ends.
"""

import re
from dataclasses import dataclass
from typing import Any

import yaml

from troupe.errors import TroupeError

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class Override:
    key: str
    value: Any
    text: str  # as the user wrote it, for manifests and the resolved config's header


class AliasFound(Exception):
    pass


class ValueLoader(yaml.SafeLoader):
    """Safe YAML that stops at the first alias."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise AliasFound
        return super().compose_node(parent, index)


def parse_value(text: str) -> Any:
    """YAML for the value, with floats such as '5e-5' (YAML 1.1 reads those as strings) as floats."""
    try:
        value = yaml.load(text, Loader=ValueLoader) if text.strip() else ""  # noqa: S506 — a SafeLoader
    except (yaml.YAMLError, ValueError, RecursionError):  # kept as text; the type check says what is wrong
        return text
    except AliasFound:
        raise TroupeError(
            f"override value {text!r}: YAML aliases (*name) are refused; write the value out, or quote text "
            "that starts with '*'"
        ) from None
    if isinstance(value, str):
        try:
            return float(value) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", value) else value
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str]) -> list[Override]:
    """Parse `key=value` words; raise with every malformed word named."""
    overrides, bad = [], []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not KEY_RE.match(key):
            bad.append(item)
            continue
        overrides.append(Override(key, parse_value(value), item))
    if bad:
        raise TroupeError(
            "overrides must look like key=value or dotted.key=value; could not read: " + ", ".join(repr(b) for b in bad)
        )
    return overrides


def apply_override(data: dict, override: Override) -> None:
    """Set `override.key` inside `data`, creating mappings on the way; lists are indexed by number."""
    *parents, last = override.key.split(".")
    node: Any = data
    for part in parents:
        node = _step(node, part, override.key)
    if isinstance(node, list):
        node[_index(node, last, override.key)] = override.value
    elif isinstance(node, dict):
        node[last] = override.value
    else:
        raise TroupeError(f"override {override.text!r}: '{override.key}' goes inside a value that is not a mapping")


def _step(node: Any, part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key)]
    if not isinstance(node, dict):
        raise TroupeError(f"override '{key}': '{part}' is inside a value that is not a mapping")
    return node.setdefault(part, {})


def _index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise TroupeError(f"override '{key}': '{part}' is not an index of a list with {len(node)} item(s)")
    return int(part)
