"""`troupe new amiya --from kaltsit [--name 阿米娅]`: copy a recipe to start a new character.

Like torchtune's `tune cp`: the file is copied as text, comments kept, and the next command is
printed. Paths need no rewriting (troupe derives them from the slug, troupe.layout); the commands in
the comments move to the new slug (`CHARACTER=amiya`), and the display name changes through the YAML
structure: `troupe.character.name`, its aliases (emptied), and the prompt texts that name the
character — never keys or other values. A first line says where the copy came from.
"""

import re
import shutil
from pathlib import Path

import yaml

from troupe.errors import TroupeError
from troupe.files import read_utf8
from troupe.layout import Layout
from troupe.project import SLUG_RE
from troupe.recipe import load_recipe

NAMED_VALUES = (("character", "name"), ("prompt", "system"), ("prompt", "user_template"))


def value_spans(text: str, path: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) character offsets in `text` of the value at troupe.<path>, if it is there."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in ("troupe", *path):
        children = dict((k.value, v) for k, v in node.value) if isinstance(node, yaml.MappingNode) else {}
        if key not in children:
            return []
        node = children[key]
    return [(node.start_mark.index, node.end_mark.index)]


def renamed(text: str, old_name: str, new_name: str) -> str:
    """The recipe text with the character's name changed inside the values that name it, and the
    aliases emptied (they were the old character's other names)."""
    spans = [(*span, old_name, new_name) for path in NAMED_VALUES for span in value_spans(text, path)]
    spans += [(*span, None, "[]") for span in value_spans(text, ("character", "aliases"))]
    for start, end, old, new in sorted(spans, reverse=True):  # from the end: offsets stay valid
        text = text[:start] + (text[start:end].replace(old, new) if old else new) + text[end:]
    return text


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
        raise TroupeError(
            f"'{slug[:80]}' is not a valid recipe name: lower-case letters, digits and '_', starting with a "
            "letter, at most 64 characters"
        )
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
