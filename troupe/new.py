"""`troupe new amiya --from kaltsit [--name 阿米娅]`: copy a recipe to start a new character.

Like torchtune's `tune cp`: the file is copied as text, comments kept, and the next command is
printed. Paths need no rewriting (troupe derives them from the slug, troupe.layout); the commands in
the comments move to the new slug (`CHARACTER=amiya`), and the display name changes through the YAML
structure: `troupe.character.name`, its aliases (emptied), and the prompt texts that name the
character — never keys or other values. A first line says where the copy came from.

The name is one line of text (no control character or line break, which would end the first line's
comment); a value that holds it is written by YAML's own dumper, quoted where the name needs it
(`a: b`, `#x`, `*x`), so the copy reads back with exactly that name and not one key more.
"""

import math
import re
import shutil
from pathlib import Path

import yaml

from troupe.errors import TroupeError
from troupe.files import read_utf8
from troupe.layout import Layout
from troupe.project import SLUG_RE, SLUG_RULE
from troupe.recipe import load_recipe

NAMED_VALUES = (("character", "name"), ("prompt", "system"), ("prompt", "user_template"))


def value_node(text: str, path: tuple[str, ...]) -> yaml.Node | None:
    """The YAML node of the value at troupe.<path> in `text`, if it is there."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in ("troupe", *path):
        children = dict((k.value, v) for k, v in node.value) if isinstance(node, yaml.MappingNode) else {}
        if key not in children:
            return None
        node = children[key]
    return node


def renamed(text: str, old_name: str, new_name: str) -> str:
    """The recipe text with the character's name changed inside the values that name it, and the
    aliases emptied (they were the old character's other names)."""
    nodes = [value_node(text, path) for path in NAMED_VALUES]
    edits = [(n, renamed_scalar(text, n, old_name, new_name)) for n in nodes if isinstance(n, yaml.ScalarNode)]
    if aliases := value_node(text, ("character", "aliases")):
        edits.append((aliases, "[]"))
    for node, new in sorted(edits, key=lambda edit: edit[0].start_mark.index, reverse=True):  # offsets stay valid
        text = text[: node.start_mark.index] + new + text[node.end_mark.index :]
    return text


def renamed_scalar(text: str, node: yaml.ScalarNode, old_name: str, new_name: str) -> str:
    """The scalar's new text. A block scalar (`|`, `>`) keeps its layout, the name changed in its
    lines, which hold any one line of text as it is; any other is written anew by YAML's dumper."""
    source = text[node.start_mark.index : node.end_mark.index]
    if node.style in ("|", ">"):
        header, newline, body = source.partition("\n")
        return header + newline + body.replace(old_name, new_name)
    return yaml_scalar(node.value.replace(old_name, new_name))


def yaml_scalar(value: str) -> str:
    """`value` as YAML on one line: plain where YAML reads it back unchanged, else quoted."""
    text = yaml.safe_dump(value, allow_unicode=True, width=math.inf).removesuffix("\n...\n").strip()
    if "\n" in text:  # a value of several lines: one double-quoted line, breaks escaped
        text = yaml.safe_dump(value, allow_unicode=True, width=math.inf, default_style='"').strip()
    return text


LINE_BREAKS = "\n\r\x85\u2028\u2029"


def name_problem(name: str) -> str | None:
    """Why a display name is not one line of text YAML can hold, or None."""
    bad = next((c for c in name if c in LINE_BREAKS or yaml.reader.Reader.NON_PRINTABLE.match(c)), None)
    if bad is None:
        return None
    return f"--name {name[:80]!r} is not one line of text (U+{ord(bad):04X} at character {name.index(bad) + 1})"


COMMENT_RE = re.compile(r"(^\s*#.*$|\s#.*$)", re.M)  # a comment line, or a comment after a value


def in_comments(text: str, old_slug: str, new_slug: str) -> str:
    """Commands (`CHARACTER=x`) and slug-derived paths moved to the new slug, in comments only:
    values (e.g. the source files the copy still reads) are the user's to change."""
    slug_re = re.compile(rf"(CHARACTER=|(?:recipes|datasets|outputs)/){re.escape(old_slug)}\b")
    return COMMENT_RE.sub(lambda m: slug_re.sub(rf"\g<1>{new_slug}", m.group(0)), text)


def rewrite(text: str, old_slug: str, new_slug: str, old_name: str | None, new_name: str | None) -> str:
    """The copy's text: commands and paths in comments moved to the new slug, the name changed where
    the recipe's values hold it, and a first line saying where it came from."""
    text = in_comments(text, old_slug, new_slug)
    if new_name and old_name and new_name != old_name:
        text = renamed(text, old_name, new_name)
    title = f"{new_name} ({new_slug})" if new_name else new_slug
    note = f"the notes below are {old_slug}'s until you edit them"
    return f"# {title}: copied from recipes/{old_slug}.yaml by `troupe new`; {note}.\n{text}"


def new_recipe(slug: str, source: Path, root: Path, name: str | None = None, force: bool = False) -> Path:
    """Write recipes/<slug>.yaml from `source` (and copy its link list); refuse to overwrite unless `force`."""
    if not SLUG_RE.match(slug):
        raise TroupeError(f"'{slug[:80]}' is not a valid recipe name: {SLUG_RULE}")
    if name and (why := name_problem(name)):
        raise TroupeError(f"{why}; give the display name on one line, without control characters")
    layout, origin = Layout(root, slug), Layout(root, source.stem)
    if layout.recipe.exists() and not force:
        raise TroupeError(f"{layout.rel(layout.recipe)} exists; pass FORCE=1 (--force) to overwrite it")
    character = load_recipe(str(source), root=root, anywhere=True).troupe.get(
        "character"
    )  # refuses what is not a recipe
    old_name = character.get("name") if isinstance(character, dict) else None
    text = rewrite(read_utf8(source), source.stem, slug, old_name if isinstance(old_name, str) else None, name)
    layout.recipe.write_text(text, encoding="utf-8")
    if origin.links.is_file():
        shutil.copy2(origin.links, layout.links)
    return layout.recipe
