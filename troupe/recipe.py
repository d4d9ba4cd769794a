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
from troupe.overrides import Override, apply_override, parse_overrides
from troupe.project import project_root, resolve_recipe
from troupe.schema import TroupeSpec

MAX_RECIPE_BYTES = 1_000_000


@dataclass
class Recipe:
    path: Path
    root: Path
    troupe: dict
    axolotl: dict
    overrides: list[Override] = field(default_factory=list)

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
    """Safe YAML only; a file too large to be a recipe is refused before parsing."""
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise TroupeError(f"{path}: larger than {MAX_RECIPE_BYTES} bytes; not a recipe")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TroupeError(f"{path}: not valid YAML: {exc}") from None


def load_recipe(name_or_path: str, overrides: list[str] = (), root: Path | None = None) -> Recipe:
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
    return Recipe(path=path, root=root, troupe=block if isinstance(block, dict) else {}, axolotl=data, overrides=parsed)
