"""The steps behind the CLI verbs: check → convert → preprocess → train → evaluate → merge.

Each step takes a loaded Recipe, does one thing, and says what it wrote. `train` runs the earlier
steps it needs: the first stage of a two-stage recipe, convert when the dataset is missing or
stale, and tokenising when the cache for this exact dataset is missing (inside `axolotl train` on
one device; as a separate `axolotl preprocess` first on several GPUs or machines, so only one
process per machine does it). On several machines the preflight (troupe/preflight.py) comes last,
right before training: every node has converted and tokenised, and they start training together
once they agree.
"""

import shlex
import time
from pathlib import Path

from troupe import dataset, evaluation
from troupe import merge as merging
from troupe.engine import run_axolotl
from troupe.errors import CheckFailed, TroupeError
from troupe.launch import SINGLE, Launch, check_master
from troupe.preflight import WAIT_S
from troupe.preflight import command as preflight_command
from troupe.preflight import run as run_preflight
from troupe.project import relative_to_root
from troupe.recipe import Recipe
from troupe.render import Resolved, first_stage, resolve, run_env, write_resolved
from troupe.validate import check


def command_line(verb: str, recipe: Recipe) -> str:
    """How to repeat this step (recorded in manifests)."""
    return " ".join(["troupe", verb, recipe.slug, *recipe.override_texts])


def checked(recipe: Recipe, need_data: bool = True, parallel: str | None = None, launch: Launch = SINGLE) -> Resolved:
    """The resolved config, or CheckFailed with every problem (dataset files only when `need_data`)."""
    result = resolve(recipe, dataset.read_manifest(recipe), parallel=parallel, launch=launch)
    problems = check(recipe, result, need_data)
    if problems:
        raise CheckFailed(problems)
    return result


def convert(recipe: Recipe) -> dict:
    checked(recipe, need_data=False)
    manifest = dataset.build(recipe, command_line("convert", recipe))
    counts = manifest["counts"]
    print(
        f"wrote {recipe.dataset_dir}: train {counts['train']}, validation {counts['validation']}, "
        f"test {counts['test']} (records read {counts['records']}, rejected {counts['rejected']}, "
        f"filtered {counts['filtered'] or 'none'})"
    )
    return manifest


def ensure_dataset(recipe: Recipe) -> None:
    if dataset.is_current(recipe):
        print(f"dataset {recipe.dataset_dir} is current")
    else:
        convert(recipe)


def _prepare(recipe: Recipe, parallel: str | None = None, need_data: bool = True, launch: Launch = SINGLE, **changes):
    """Check, resolve (plus per-step `changes`), write config.resolved.yaml; the run environment."""
    result = checked(recipe, need_data, parallel, launch)
    result.config.update(changes)
    for note in result.notes:
        print(note)
    path = write_resolved(recipe, result)
    return result, path, run_env(result.config, recipe.root) | result.env


def preprocess(recipe: Recipe, debug: bool = False) -> None:
    """Tokenise into the keyed cache; `debug` prints sample tokens with their labels (-100 = not trained)."""
    _, path, env = _prepare(recipe)
    # --no-download: Axolotl would otherwise instantiate the base model only to pre-fetch it.
    extra = ["--no-download"]
    if debug:
        env["AXOLOTL_LOG_LEVEL"] = "INFO"  # the labelled tokens are logged at INFO
        extra += ["--debug", "--debug-num-examples", "2"]
    run_axolotl("preprocess", path, recipe.root, env, extra)


def train(
    recipe: Recipe, launch: Launch = SINGLE, parallel: str | None = None, dry_run: bool = False, wait: int = WAIT_S
) -> None:
    """Train, first training the stage this recipe starts from (`troupe.after`) if it has no adapter.
    `dry_run` writes the resolved config and prints the commands without running anything; `wait` is
    how long a multi-node preflight waits for the other nodes."""
    if dry_run:
        result, path, _ = _prepare(recipe, parallel, need_data=False, launch=launch)
        launcher = _launcher(result)
        if launch.nodes > 1:
            print(f"$ {shlex.join(preflight_command(recipe, result, wait))}")
        print(f"$ axolotl train {shlex.join([str(path), *launcher])}")
        return
    if launch.nodes > 1:
        check_master(launch)
    # before anything runs (a loop of stages is reported here)
    checked(recipe, need_data=False, parallel=parallel, launch=launch)
    _train_first_stage(recipe, launch, parallel)
    ensure_dataset(recipe)
    result, path, env = _prepare(recipe, parallel, launch=launch)
    launcher = _launcher(result)
    if launch.processes > 1 and not (recipe.root / result.config["dataset_prepared_path"]).is_dir():
        # one process per machine tokenises; otherwise every GPU's process would (a single one does it in `train`)
        run_axolotl("preprocess", path, recipe.root, env, ["--no-download"])
    if launch.nodes > 1:
        run_preflight(recipe, result, env, wait)
    started = time.perf_counter()
    run_axolotl("train", path, recipe.root, env, launcher)
    saved = recipe.output_dir if (recipe.output_dir / "adapter_config.json").is_file() else "the node of global rank 0"
    print(f"trained {recipe.slug} in {time.perf_counter() - started:.0f} s → {saved}")


def _train_first_stage(recipe: Recipe, launch: Launch, parallel: str | None) -> None:
    first = first_stage(recipe)
    if not first or (first.output_dir / "adapter_config.json").is_file():
        return
    if launch.nodes > 1:  # each node would train the first stage alone, and only one of them would save it
        raise TroupeError(
            f"{recipe.slug} starts from {first.slug}'s adapter, which this node does not have: train {first.slug} "
            f"first (the same command with CHARACTER={first.slug}), then copy outputs/{first.slug}/ from the node "
            "that saved it to every node"
        )
    print(f"{recipe.slug} starts from {first.slug}'s adapter, which is not trained yet: training {first.slug} first")
    train(first, launch, parallel)


def _launcher(result: Resolved) -> list[str]:
    if result.launch.gpus > 1 and not result.cuda:
        raise TroupeError(
            f"GPUS={result.launch.gpus} needs CUDA GPUs and this machine has none (TROUPE_DEVICE=cuda with "
            "--dry-run shows what would run)"
        )
    return result.launcher_args()


def preflight(recipe: Recipe, launch: Launch, parallel: str | None = None, wait: int = WAIT_S) -> None:
    """Only the preflight: do the nodes agree on what they would train?"""
    if launch.nodes < 2:
        raise TroupeError("the preflight compares machines: give NODES (2 or more), NODE_RANK and MASTER")
    check_master(launch)
    result, _, env = _prepare(recipe, parallel, launch=launch)
    run_preflight(recipe, result, env, wait)


def evaluate(recipe: Recipe) -> dict:
    result, _, _ = _prepare(recipe)
    scores = evaluation.evaluate(recipe, result.config)
    print(evaluation.summary_table(scores))
    print(f"wrote {recipe.output_dir / 'eval'}: metrics.json, generations.csv, probes.json, report.html")
    return scores


def merge(recipe: Recipe) -> Path:
    # this recipe's own adapter (a two-stage recipe's lora_model_dir names the first stage's)
    _, path, env = _prepare(recipe, lora_model_dir=relative_to_root(recipe.output_dir, recipe.root))
    run_axolotl("merge-lora", path, recipe.root, env)
    merged = recipe.output_dir / "merged"
    copied = merging.restore_tokenizer(recipe.output_dir, merged)
    merging.verify_chat_template(recipe.output_dir, merged)
    print(f"merged model: {merged} (training tokenizer and chat template restored: {', '.join(copied)})")
    return merged
