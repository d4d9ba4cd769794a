"""`troupe new amiya --from kaltsit [--name 阿米娅]`: copy a recipe to start a new character.

Like torchtune's `tune cp`: the file is copied as text (comments kept), slug-derived paths
(datasets/<slug>, outputs/<slug>, recipes/<slug>.urls.txt) are rewritten, the character name is
replaced everywhere it appears, and the next command is printed.
"""

import re
import shutil
from pathlib import Path

from troupe.errors import TroupeError
from troupe.files import read_utf8
from troupe.project import SLUG_RE
from troupe.recipe import load_recipe


def rewrite(text: str, old_slug: str, new_slug: str, old_name: str | None, new_name: str | None) -> str:
    """The recipe text with paths (and, if asked, the character's name) moved to the new character."""
    text = re.sub(rf"\b(datasets|outputs)/{re.escape(old_slug)}\b", rf"\1/{new_slug}", text)
    text = text.replace(f"recipes/{old_slug}.urls.txt", f"recipes/{new_slug}.urls.txt")
    if new_name and old_name:
        text = text.replace(old_name, new_name)
        text = re.sub(r"(?m)^(\s*aliases:).*$", r"\1 []", text)
    return text


def new_recipe(slug: str, source: Path, root: Path, name: str | None = None, force: bool = False) -> Path:
    """Write recipes/<slug>.yaml from `source` (and copy its link list); refuse to overwrite unless `force`."""
    if not SLUG_RE.match(slug):
        raise TroupeError(
            f"'{slug[:80]}' is not a valid recipe name: lower-case letters, digits and '_', starting with a "
            "letter, at most 64 characters"
        )
    dest = root / "recipes" / f"{slug}.yaml"
    if dest.exists() and not force:
        raise TroupeError(f"{dest} exists; pass FORCE=1 (--force) to overwrite it")
    character = load_recipe(str(source), root=root).troupe.get("character")  # refuses what is not a recipe
    old_name = character.get("name") if isinstance(character, dict) else None
    header = f"# Copied from recipes/{source.name} by `troupe new`: edit the source and prompt below.\n"
    text = rewrite(read_utf8(source), source.stem, slug, old_name if isinstance(old_name, str) else None, name)
    dest.write_text(header + text, encoding="utf-8")
    urls = source.with_name(f"{source.stem}.urls.txt")
    if urls.is_file():
        shutil.copy2(urls, dest.with_name(f"{slug}.urls.txt"))
    return dest
