"""Where things live: the project root, recipe names, and the folders derived from a slug.

Recipes are found on the filesystem (`recipes/<slug>.yaml`); there is no registry to keep in sync.
The root is `$TROUPE_ROOT` if set, else the nearest folder upwards holding `recipes/`.
"""

import difflib
import os
import re
from pathlib import Path

from troupe.errors import TroupeError
from troupe.layout import RECIPE_SUFFIX, RECIPES_DIR, Layout

SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")  # at most 64 characters: a file name on every system
SLUG_RULE = "lower-case letters, digits and '_', starting with a letter, at most 64 characters"


def project_root() -> Path:
    """The folder holding recipes/, datasets/, outputs/ and models/."""
    if os.environ.get("TROUPE_ROOT"):
        return Path(os.environ["TROUPE_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / RECIPES_DIR).is_dir():
            return folder
    return here


def recipe_names(root: Path) -> list[str]:
    """Slugs of every recipe in `root/recipes`, sorted."""
    return sorted(p.stem for p in (root / RECIPES_DIR).glob(f"*{RECIPE_SUFFIX}") if SLUG_RE.match(p.stem))


def closest(word: str, choices) -> str | None:
    """The most similar choice, if any is close enough to be a likely typo."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices) -> str:
    """' (did you mean x?)' for the closest choice, or ''."""
    match = closest(word, choices)
    return f" (did you mean '{match}'?)" if match else ""


def resolve_recipe(name_or_path: str, root: Path, anywhere: bool = False) -> Path:
    """A recipe slug (looked up in recipes/), or a path to a recipe file: recipes/<slug>.yaml, or
    anywhere when `anywhere` (for read-only verbs)."""
    if name_or_path.endswith((RECIPE_SUFFIX, ".yml")) or os.sep in name_or_path or "/" in name_or_path:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise TroupeError(f"recipe file not found: {name_or_path}")
        path = path.resolve()
        if not anywhere and path != (root / RECIPES_DIR / path.name).resolve():
            raise TroupeError(
                f"{name_or_path}: only a recipe in recipes/ may build or train (its name is the slug whose "
                "datasets/ and outputs/ it writes); copy it there, or `troupe import` a shared one"
            )
        return path
    if not SLUG_RE.match(name_or_path):
        raise TroupeError(
            f"'{name_or_path[:80]}' is not a recipe name: names are {SLUG_RULE} (or give a path to a .yaml file)"
        )
    path = Layout(root, name_or_path).recipe
    if not path.is_file():
        known = recipe_names(root)
        raise TroupeError(
            f"no recipe named '{name_or_path}'{did_you_mean(name_or_path, known)}\n"
            f"  known recipes: {', '.join(known) or '(none)'} (in {root / RECIPES_DIR})"
        )
    return path


def relative_to_root(path: Path, root: Path) -> str:
    """A path as written in manifests and messages: relative to the root when inside it."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()
