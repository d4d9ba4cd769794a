"""Load a recipe: one YAML file = plain Axolotl keys + one `troupe:` block.

recipe = load_recipe("kaltsit", overrides=["max_steps=2"])
recipe.axolotl   # the recipe's Axolotl keys (troupe.render adds the paths and CPU/cache adjustments)
recipe.troupe    # the raw troupe block; recipe.spec is its validated form
recipe.first_stage  # the recipe named by `troupe.after` (a two-stage character), or None
recipe.layout    # every path that derives from the slug (troupe.layout)

YAML is read safely; a duplicate key (YAML would silently keep the last), an alias bomb, a file too
large to be a recipe or not UTF-8 is refused with one line.
"""

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from troupe.errors import TroupeError
from troupe.files import read_utf8
from troupe.layout import Layout
from troupe.overrides import Override, apply_override, parse_overrides
from troupe.project import project_root, resolve_recipe
from troupe.schema import TroupeSpec

MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = (
    100_000  # after expanding YAML aliases (or one per character of a larger file): an alias bomb is far past it
)


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

    @functools.cached_property
    def spec(self) -> TroupeSpec:
        """The validated troupe block, validated on first use (raises pydantic.ValidationError;
        `troupe check` reports it)."""
        return TroupeSpec.parse(self.troupe)

    @functools.cached_property
    def first_stage(self) -> "Recipe | None":
        """The recipe named by `troupe.after`, with the same Axolotl-key overrides, read once; None
        for a one-stage recipe or one whose first stage cannot be read (`troupe check` says why)."""
        after = self.troupe.get("after")
        if not isinstance(after, str):
            return None
        shared = [o.text for o in self.overrides if not o.key.startswith("troupe.")]
        try:
            return load_recipe(after, shared, root=self.root, allow_unsafe=self.allow_unsafe)
        except TroupeError:
            return None

    @property
    def layout(self) -> Layout:
        return Layout(self.root, self.slug)

    @property
    def dataset_dir(self) -> Path:
        return self.layout.dataset_dir

    @property
    def output_dir(self) -> Path:
        return self.layout.output_dir

    @property
    def override_texts(self) -> list[str]:
        return [o.text for o in self.overrides]


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe YAML (libyaml's parser where installed) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice (lines {seen[key]} and {key_node.start_mark.line + 1})"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, max_bytes: int = MAX_RECIPE_BYTES, what: str = "a recipe") -> object:
    """Safe YAML only; a duplicate key, or aliases that expand past MAX_RECIPE_NODES values (a
    "billion laughs" bomb), are refused."""
    return parse_yaml(read_utf8(path, max_bytes, what), str(path))


MAX_YAML_DEPTH = 100  # a recipe nests 4 deep; libyaml's composer recurses in C, so depth is checked first


def yaml_depth(text: str) -> int:
    """The deepest nesting of mappings and sequences, from the parser's events (no recursion)."""
    depth = deepest = 0
    for event in yaml.parse(text, Loader=StrictLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_YAML_DEPTH:
                break
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest


def parse_yaml(text: str, name: str) -> object:
    try:
        if yaml_depth(text) > MAX_YAML_DEPTH:
            raise TroupeError(f"{name}: not a recipe: nested too deeply (more than {MAX_YAML_DEPTH} levels)")
        data = yaml.load(text, Loader=StrictLoader)  # noqa: S506 — StrictLoader is a safe loader
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer longer than Python converts
        raise TroupeError(f"{name}: not valid YAML: {exc}") from None
    except RecursionError:
        raise TroupeError(f"{name}: not a recipe: nested too deeply") from None
    limit = max(MAX_RECIPE_NODES, len(text))  # without aliases, a document holds fewer values than characters
    if expanded_size(data, limit) > limit:
        raise TroupeError(f"{name}: its YAML aliases expand to more than {limit} values; refused")
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
    name_or_path: str,
    overrides: list[str] = (),
    root: Path | None = None,
    allow_unsafe: bool = False,
    anywhere: bool = False,
) -> Recipe:
    """Find, read and split a recipe, then apply `key=value` overrides (`troupe.*` reach the block).
    A recipe file outside recipes/ is read only when `anywhere` (`troupe check`): a step that writes
    a slug's data or outputs runs only the recipe that owns the slug, recipes/<slug>.yaml."""
    root = root or project_root()
    path = resolve_recipe(name_or_path, root, anywhere)
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
