"""The steps behind the CLI verbs: check → convert → preprocess → train → evaluate → merge.

Each step takes a loaded Recipe, does one thing, and says what it wrote. `train` runs the earlier
steps it needs (convert when the dataset is missing or stale, preprocess when the tokenised cache
for this exact dataset is missing).
"""

import json
import time
from pathlib import Path

from troupe import dataset
from troupe import evaluate as evaluation
from troupe import merge as merging
from troupe.engine import run_axolotl
from troupe.errors import CheckFailed
from troupe.recipe import Recipe
from troupe.render import Resolved, resolve, run_env, write_resolved
from troupe.validate import check


def command_line(verb: str, recipe: Recipe) -> str:
    """How to repeat this step (recorded in manifests)."""
    return " ".join(["troupe", verb, recipe.slug, *recipe.override_texts])


def resolved(recipe: Recipe) -> Resolved:
    return resolve(recipe, dataset.read_manifest(recipe))


def checked(recipe: Recipe, need_data: bool = True) -> Resolved:
    """The resolved config, or CheckFailed with every problem (dataset files only when `need_data`)."""
    result = resolved(recipe)
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
        f"test {counts['test']} (lines {counts['lines']}, rejected {counts['rejected']}, filtered {counts['filtered']})"
    )
    return manifest


def ensure_dataset(recipe: Recipe) -> None:
    if dataset.is_current(recipe):
        print(f"dataset {recipe.dataset_dir} is current")
    else:
        convert(recipe)


def _prepare(recipe: Recipe) -> tuple[Resolved, Path, dict]:
    result = checked(recipe)
    for note in result.notes:
        print(note)
    path = write_resolved(recipe, result)
    return result, path, run_env(result.config, recipe.root)


def preprocess(recipe: Recipe, debug: bool = False) -> None:
    """Tokenise into the keyed cache; `debug` prints sample tokens with their labels (-100 = not trained)."""
    _, path, env = _prepare(recipe)
    # --no-download: Axolotl would otherwise instantiate the base model only to pre-fetch it.
    extra = ["--no-download"]
    if debug:
        env["AXOLOTL_LOG_LEVEL"] = "INFO"  # the labelled tokens are logged at INFO
        extra += ["--debug", "--debug-num-examples", "2"]
    run_axolotl("preprocess", path, recipe.root, env, extra)


def train(recipe: Recipe, gpus: int = 1) -> None:
    ensure_dataset(recipe)
    result, path, env = _prepare(recipe)
    if not (recipe.root / result.config["dataset_prepared_path"]).is_dir():
        run_axolotl("preprocess", path, recipe.root, env, ["--no-download"])
    started = time.perf_counter()
    run_axolotl("train", path, recipe.root, env, result.launcher_args(gpus))
    print(f"trained {recipe.slug} in {time.perf_counter() - started:.0f} s → {recipe.output_dir}")


def evaluate(recipe: Recipe) -> dict:
    result, path, _ = _prepare(recipe)
    metrics = evaluation.evaluate(
        result.config, recipe.spec.evaluate, recipe.dataset_dir, recipe.output_dir, recipe.root
    )
    print(evaluation.summary_table(metrics))
    print(f"wrote {recipe.output_dir / 'eval'}/metrics.json and generations.csv")
    return metrics


def merge(recipe: Recipe) -> Path:
    _, path, env = _prepare(recipe)
    run_axolotl("merge-lora", path, recipe.root, env)
    merged = recipe.output_dir / "merged"
    copied = merging.restore_tokenizer(recipe.output_dir, merged)
    merging.verify_chat_template(recipe.output_dir, merged)
    print(f"merged model: {merged} (training tokenizer and chat template restored: {', '.join(copied)})")
    return merged


def training_log(output_dir: Path) -> list[dict]:
    """Axolotl's log history (loss per step, eval loss) from the newest checkpoint."""
    states = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return json.loads(states[-1].read_text())["log_history"] if states else []
