"""The steps behind the CLI verbs: check → convert → preprocess → train → evaluate → merge.

Each step takes the verb's plan (troupe.plan: the recipe loaded once, checked once, resolved once),
does one thing, and says what it wrote. A step that makes something writes it beside its final
place and renames it in only when it succeeded, with a record of what it was made from (troupe.provenance):
- convert: datasets/<slug>/ as one unit (troupe.dataset);
- train: Axolotl writes outputs/<slug>/runs/<id>/; on exit 0 the run becomes outputs/<slug>/adapter/
  with train.resolved.yaml (exactly what Axolotl received) and troupe.json; an interrupted run
  leaves the previous adapter untouched;
- merge: built in a hidden folder, then outputs/<slug>/merged/ with merge.resolved.yaml and the
  adapter's sha256 in troupe.json.
`train` runs the earlier steps it needs: the first stage of a two-stage recipe, a packaged base model
not built yet (troupe.bases), convert when the dataset is missing or stale, and tokenising when the
cache for this exact dataset is missing (inside
`axolotl train` on one device; as a separate `axolotl preprocess` first on several GPUs or machines,
so only one process per machine does it). On several machines the preflight (troupe/preflight.py)
comes last, right before training: every node has converted and tokenised, and they start training
together once they agree.
"""

import shlex
import shutil
import sys
import time
from pathlib import Path

from troupe import bases, dataset, evaluation, provenance
from troupe import merge as merging
from troupe.engine import run_axolotl
from troupe.errors import TroupeError
from troupe.files import new_dir_beside, replace_dir
from troupe.launch import check_master
from troupe.layout import MERGE_CONFIG, TRAINING_CONFIG
from troupe.plan import Needs, Plan, make_plan
from troupe.preflight import WAIT_S
from troupe.preflight import command as preflight_command
from troupe.preflight import run as run_preflight
from troupe.recipe import Recipe
from troupe.render import Resolved, run_env, write_resolved


def command_line(verb: str, recipe: Recipe) -> str:
    """How to repeat this step (recorded in manifests)."""
    return " ".join(["troupe", verb, recipe.slug, *recipe.override_texts])


def convert(plan: Plan) -> dict:
    recipe = plan.recipe
    manifest = dataset.build(recipe, command_line("convert", recipe))
    counts = manifest["counts"]
    print(
        f"wrote {recipe.layout.rel(recipe.dataset_dir)}: train {counts['train']}, validation {counts['validation']}, "
        f"test {counts['test']} (records read {counts['records']}, rejected {counts['rejected']}, "
        f"filtered {counts['filtered'] or 'none'})"
    )
    return manifest


def ensure_dataset(plan: Plan) -> None:
    recipe = plan.recipe
    if dataset.is_current(recipe):
        print(f"dataset {recipe.layout.rel(recipe.dataset_dir)} is current (its files match its manifest)")
    else:
        convert(plan)


def ensure_base(recipe: Recipe) -> None:
    """A base model named as models/<name> with a definition in configs/bases/ is built from its
    registry package if it is missing or not current (troupe.bases)."""
    if name := bases.for_base_model(recipe.axolotl.get("base_model"), recipe.root):
        bases.build(name, recipe.root)


def _say_notes(plan: Plan) -> None:
    for note in plan.notes:
        print(note)


def _env(result: Resolved, root) -> dict:
    """The environment Axolotl runs in: troupe's (render.run_env) and what this launch needs."""
    return run_env(result.config, root) | result.env


def preprocess(plan: Plan, debug: bool = False) -> None:
    """Tokenise into the keyed cache; `debug` prints sample tokens with their labels (-100 = not trained)."""
    recipe, result = plan.recipe, plan.resolved
    _say_notes(plan)
    path = write_resolved(recipe, result, recipe.layout.preprocess_config, "preprocess")
    env = _env(result, recipe.root)
    # --no-download: Axolotl would otherwise instantiate the base model only to pre-fetch it.
    extra = ["--no-download"]
    if debug:
        env["AXOLOTL_LOG_LEVEL"] = "INFO"  # the labelled tokens are logged at INFO
        extra += ["--debug", "--debug-num-examples", "2"]
    run_axolotl("preprocess", path, recipe.root, env, extra)


def dry_run(plan: Plan, wait: int = WAIT_S) -> None:
    """Write the config `train` would use (outputs/<slug>/train.dry-run.yaml) and print the commands
    without running anything."""
    recipe, result = plan.recipe, plan.resolved
    _say_notes(plan)
    path = write_resolved(recipe, result, recipe.layout.dry_run_config, "train --dry-run")
    launcher = result.launcher_args()
    if result.launch.nodes > 1:
        print(f"$ {shlex.join(preflight_command(recipe, result, wait))}")
    print(f"$ axolotl train {shlex.join([recipe.layout.rel(path), *launcher])}")


def train(plan: Plan, wait: int = WAIT_S, resume: bool = False) -> None:
    """Train, first training the stage this recipe starts from (`troupe.after`) if it has no adapter,
    then the packaged base model and the dataset if they are missing or stale. `wait` is how long a
    multi-node preflight waits for the other nodes; `resume` continues the last interrupted run from
    its newest checkpoint."""
    recipe, result = plan.recipe, plan.resolved
    if result.launch.nodes > 1:
        check_master(result.launch)
    _train_first_stage(plan)
    ensure_base(recipe)
    ensure_dataset(plan)
    plan.with_dataset()
    _say_notes(plan)
    if result.launch.nodes > 1:
        run_preflight(recipe, result, _env(result, recipe.root), wait)
    run_dir = _resumed_run(recipe, result) if resume else _new_run(recipe)
    started = time.perf_counter()
    try:
        _run_training(recipe, result, run_dir)
    except KeyboardInterrupt:
        print(f"interrupted: {_unfinished(recipe, run_dir)}", file=sys.stderr)
        raise
    _promote(recipe, result, run_dir, time.perf_counter() - started)


def _train_first_stage(plan: Plan) -> None:
    recipe, first = plan.recipe, plan.recipe.first_stage
    if not first or provenance.read_record(first.layout.adapter_dir) is not None:
        return
    if plan.launch.nodes > 1:  # each node would train the first stage alone, and only one of them would save it
        raise TroupeError(
            f"{recipe.slug} starts from {first.slug}'s adapter, which this node does not have: train {first.slug} "
            f"first (the same command with CHARACTER={first.slug}), then copy outputs/{first.slug}/adapter/ from "
            "the node that saved it to every node"
        )
    print(f"{recipe.slug} starts from {first.slug}'s adapter, which is not trained yet: training {first.slug} first")
    train(make_plan(first, Needs.TRAIN, plan.launch, _parallel_of(plan)))


def _parallel_of(plan: Plan) -> str | None:
    """The multi-GPU setup the plan was resolved with (configs/parallel/<name>), for its first stage."""
    return plan.resolved.parallel


def _new_run(recipe: Recipe) -> Path:
    """outputs/<slug>/runs/<id>: earlier runs left there were interrupted; they are removed."""
    for stale in provenance.interrupted_runs(recipe.layout):
        print(f"removing an unfinished run: {recipe.layout.rel(stale)}")
        shutil.rmtree(stale, ignore_errors=True)
    run_dir = recipe.layout.runs_dir / provenance.run_id()
    run_dir.mkdir(parents=True)
    return run_dir


def _resumed_run(recipe: Recipe, result: Resolved) -> Path:
    """The newest interrupted run, continued from its newest checkpoint (Axolotl's
    `resume_from_checkpoint`) with the config it started with; other unfinished runs are removed."""
    layout = recipe.layout
    runs = [run for run in provenance.interrupted_runs(layout) if provenance.checkpoints(run)]
    if not runs:
        raise TroupeError(f"nothing to resume: {layout.rel(layout.runs_dir)} holds no unfinished run with a checkpoint")
    run_dir = runs[-1]
    started_with = provenance.training_config(layout, run_dir)
    result.config["output_dir"] = layout.rel(run_dir)
    changed = sorted(
        key
        for key in {*started_with, *result.config} - {"resume_from_checkpoint"}
        if started_with.get(key) != result.config.get(key)
    )
    if changed:
        raise TroupeError(
            f"{layout.rel(run_dir)} was started with a different config ({', '.join(changed)}): "
            f"train from the start without RESUME, or resume with the settings it had"
        )
    for stale in provenance.interrupted_runs(layout):
        if stale != run_dir:
            shutil.rmtree(stale, ignore_errors=True)
    checkpoint = provenance.checkpoints(run_dir)[-1]
    result.config["resume_from_checkpoint"] = layout.rel(checkpoint)  # set by troupe, after the check
    print(f"resuming {layout.rel(run_dir)} from {checkpoint.name} ({provenance.checkpoint_progress(checkpoint)})")
    return run_dir


def _unfinished(recipe: Recipe, run_dir: Path) -> str:
    """What a run that stopped before its planned end left, and how to go on."""
    layout = recipe.layout
    kept = f"the previous adapter is kept; the unfinished run is {layout.rel(run_dir)}"
    if saved := provenance.checkpoints(run_dir):
        progress = provenance.checkpoint_progress(saved[-1])
        return f"{kept} (checkpoint at {progress}): resume it with make train CHARACTER={recipe.slug} RESUME=1"
    return f"{kept}, with no checkpoint to resume from"


def _run_training(recipe: Recipe, result: Resolved, run_dir: Path) -> None:
    result.config["output_dir"] = recipe.layout.rel(run_dir)
    path = write_resolved(recipe, result, run_dir / TRAINING_CONFIG, "train")
    env, launcher = _env(result, recipe.root), result.launcher_args()
    if result.launch.processes > 1 and not (recipe.root / result.config["dataset_prepared_path"]).is_dir():
        # one process per machine tokenises; otherwise every GPU's process would (a single one does it in `train`)
        run_axolotl("preprocess", path, recipe.root, env, ["--no-download"])
    run_axolotl("train", path, recipe.root, env, launcher)


def _promote(recipe: Recipe, result: Resolved, run_dir: Path, seconds: float) -> None:
    """The finished run becomes outputs/<slug>/adapter/, with its record. Across machines, Axolotl
    saves the weights on the node of global rank 0 only (FSDP): the others keep no adapter."""
    layout = recipe.layout
    if provenance.weights_sha256(run_dir) is None:
        if result.launch.nodes > 1:
            shutil.rmtree(run_dir, ignore_errors=True)
            print(f"trained {recipe.slug} in {seconds:.0f} s; the adapter was saved on the node of global rank 0")
            return
        raise TroupeError(f"axolotl train exited 0 but saved no weights in {layout.rel(run_dir)}")
    if provenance.run_finished(run_dir) is None:  # Axolotl saves and exits 0 on Ctrl-C too
        raise TroupeError(f"training stopped before its planned end: {_unfinished(recipe, run_dir)}")
    record = _training_record(recipe, result, run_dir, seconds)
    provenance.keep_training_log(run_dir)
    provenance.write_record(run_dir, record)
    replace_dir(run_dir, layout.adapter_dir)
    print(f"trained {recipe.slug} in {seconds:.0f} s → {layout.rel(layout.adapter_dir)}")


def _training_record(recipe: Recipe, result: Resolved, run_dir: Path, seconds: float) -> dict:
    manifest = dataset.read_manifest(recipe)
    first = recipe.first_stage
    fields = {
        "recipe": recipe.layout.rel(recipe.path),
        "overrides": recipe.override_texts,
        "config": TRAINING_CONFIG,
        "base_model": result.config.get("base_model"),
        "launch": {"nodes": result.launch.nodes, "gpus_per_node": result.launch.gpus},
        "first_stage_adapter_sha256": (provenance.read_record(first.layout.adapter_dir) or {}).get("adapter_sha256")
        if first
        else None,
        "dataset_splits": {name: entry["sha256"] for name, entry in manifest["files"].items()},
        "adapter_sha256": provenance.weights_sha256(run_dir),
        "steps": provenance.run_finished(run_dir),
        "seconds": round(seconds, 1),
    }
    return provenance.record("train", fields)


def preflight(plan: Plan, wait: int = WAIT_S) -> None:
    """Only the preflight: do the nodes agree on what they would train?"""
    recipe, result = plan.recipe, plan.resolved
    if result.launch.nodes < 2:
        raise TroupeError("the preflight compares machines: give NODES (2 or more), NODE_RANK and MASTER")
    check_master(result.launch)
    _say_notes(plan)
    run_preflight(recipe, result, _env(result, recipe.root), wait)


def evaluate(plan: Plan) -> dict:
    recipe = plan.recipe
    adapter = provenance.adapter_record(recipe.layout)  # no adapter: say so before anything is loaded
    if why := dataset.trained_on_problem(recipe, adapter):
        raise TroupeError(f"not evaluating: {why}")
    _say_notes(plan)
    scores = evaluation.evaluate(recipe)
    print(evaluation.summary_table(scores))
    print(f"wrote {recipe.layout.rel(recipe.layout.eval_dir)}: metrics.json, generations.csv, probes.json, report.html")
    return scores


def merge(plan: Plan) -> Path:
    """Axolotl's merge of the current adapter, built aside and renamed in with its record."""
    recipe, result = plan.recipe, plan.resolved
    layout = recipe.layout
    adapter = provenance.adapter_record(layout)
    _say_notes(plan)
    build = new_dir_beside(layout.merged_dir)
    result.config.update(output_dir=layout.rel(build), lora_model_dir=layout.rel(layout.adapter_dir))
    path = write_resolved(recipe, result, build / MERGE_CONFIG, "merge")
    run_axolotl("merge-lora", path, recipe.root, _env(result, recipe.root))
    merged = build / "merged"
    copied = merging.restore_tokenizer(layout.adapter_dir, merged)
    merging.verify_chat_template(layout.adapter_dir, merged)
    shutil.move(path, merged / path.name)
    made_from = {"adapter_sha256": adapter["adapter_sha256"], "adapter_finished": adapter["finished"]}
    provenance.write_record(merged, provenance.record("merge", made_from))
    replace_dir(merged, layout.merged_dir)
    shutil.rmtree(build, ignore_errors=True)
    restored = ", ".join(copied)
    print(f"merged model: {layout.rel(layout.merged_dir)} (training tokenizer and chat template restored: {restored})")
    return layout.merged_dir


def export(plan: Plan) -> Path:
    """GGUF files of the merged model and the adapter, checked in llama.cpp (troupe.export)."""
    from troupe.export import export as export_gguf

    _say_notes(plan)
    return export_gguf(plan.recipe)
