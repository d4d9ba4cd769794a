"""Load a recipe: one YAML file = plain Axolotl keys + one `troupe:` block.

recipe = load_recipe("kaltsit", overrides=["max_steps=2"])
recipe.axolotl   # what Axolotl gets (before troupe's CPU/cache adjustments)
recipe.troupe    # the raw troupe block; recipe.spec is its validated form
"""

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from troupe.errors import TroupeError
from troupe.files import read_utf8
from troupe.overrides import Override, apply_override, parse_overrides
from troupe.project import project_root, resolve_recipe
from troupe.schema import TroupeSpec

MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = 100_000  # after expanding YAML aliases: no recipe is near this; an alias bomb is


@dataclass
class Recipe:
    path: Path
    root: Path
    troupe: dict
    axolotl: dict
    overrides: list[Override] = field(default_factory=list)
    allow_unsafe: bool = False  # the user trusts this recipe (see troupe.policy)

    @property
    def slug(self) -> str:
        return self.path.stem

    @property
    def spec(self) -> TroupeSpec:
        """The validated troupe block (raises pydantic.ValidationError; `troupe check` reports it)."""
        return TroupeSpec.parse(self.troupe)

    @property
    def dataset_dir(self) -> Path:
        return self.root / "datasets" / self.slug

    @property
    def output_dir(self) -> Path:
        return self.root / self.axolotl.get("output_dir", f"outputs/{self.slug}")

    @property
    def override_texts(self) -> list[str]:
        return [o.text for o in self.overrides]


def read_yaml(path: Path) -> object:
    """Safe YAML only; a file too large to be a recipe, or one whose aliases expand past
    MAX_RECIPE_NODES values (a "billion laughs" bomb), is refused."""
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise TroupeError(f"{path}: larger than {MAX_RECIPE_BYTES} bytes; not a recipe")
    try:
        data = yaml.safe_load(read_utf8(path))
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer longer than Python converts
        raise TroupeError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise TroupeError(f"{path}: not a recipe: nested too deeply") from None
    if expanded_size(data, MAX_RECIPE_NODES) > MAX_RECIPE_NODES:
        raise TroupeError(f"{path}: its YAML aliases expand to more than {MAX_RECIPE_NODES} values; refused")
    return data


def expanded_size(data: object, limit: int) -> int:
    """Values in `data` with every alias expanded, counting stops just past `limit` (so a bomb is
    never walked through)."""
    count, stack = 0, [data]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
    return count


def load_recipe(
    name_or_path: str, overrides: list[str] = (), root: Path | None = None, allow_unsafe: bool = False
) -> Recipe:
    """Find, read and split a recipe, then apply `key=value` overrides (`troupe.*` reach the block)."""
    root = root or project_root()
    path = resolve_recipe(name_or_path, root)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise TroupeError(f"{path}: a recipe is a YAML mapping of Axolotl keys plus a 'troupe:' block")
    data = copy.deepcopy(data)
    parsed = parse_overrides(list(overrides))
    for override in parsed:
        apply_override(data, override)
    block = data.pop("troupe", None)
    block = block if isinstance(block, dict) else {}
    return Recipe(path=path, root=root, troupe=block, axolotl=data, overrides=parsed, allow_unsafe=allow_unsafe)
