"""What each output was made from, and which output a consumer may use.

Every step writes one record, built by `record` and written by `write_record`: the same common
fields {"step", …the step's own fields…, "versions", "finished"} in every one, read back by
`read_record` (which refuses another step's record). A step promotes its folder whole only when it
succeeded (troupe.files.replace_dir):
    datasets/<slug>/manifest.json        convert: counts, files (with sha256), sources, the command
    outputs/<slug>/adapter/troupe.json   train: the config Axolotl received, the dataset's split
                                         hashes, the base model, the adapter's sha256, the steps
    outputs/<slug>/merged/troupe.json    merge: the sha256 of the adapter it was merged from
    outputs/<slug>/eval/troupe.json      evaluate: the adapter and test split it scored
    outputs/<slug>/export/troupe.json    export: the GGUF files and llama.cpp's agreement
    models/<name>/troupe.json            base (from a registry package) or tiny-model
    …/runs/<id>/troupe-run-finished.json train-loop: the training loop reached its end (the plugin)
A consumer checks the record, never a file's presence: `model_to_load` gives serve, chat, evaluate
and vllm the merged model only when it was made from the current adapter, and says which one.
An interrupted training run stays in outputs/<slug>/runs/<id>/ without a record; `troupe list`
shows it as interrupted and the previous adapter is untouched.
"""

import json
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from troupe import __version__
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, json_text, sha256_file
from troupe.layout import TRAINING_CONFIG, Layout

RECORD = "troupe.json"
RUN_FINISHED = "troupe-run-finished.json"  # written by troupe's Axolotl plugin when training reached its end
COMMON = frozenset({"step", "versions", "finished"})
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "model.safetensors.index.json")
VERSIONED = ("axolotl", "torch", "transformers", "peft", "accelerate")


def versions() -> dict[str, str]:
    """troupe's and the engine's versions, read from package metadata (nothing is imported)."""
    found = {"troupe": __version__}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def record(step: str, fields: dict) -> dict:
    """One step's record: its name, its own fields, then the versions it ran with and when it finished."""
    return {"step": step, **fields, "versions": versions(), "finished": timestamp()}


def write_record(folder: Path, made: dict, name: str = RECORD) -> None:
    """Write a record built by `record` into the folder the step made (atomically)."""
    if not COMMON <= made.keys():
        raise ValueError(f"a record needs {sorted(COMMON)}: build it with provenance.record")
    atomic_write_text(folder / name, json_text(made))


def read_record(folder: Path, step: str | None = None, name: str = RECORD) -> dict | None:
    """A folder's record, or None when it has none (never finished, not troupe's, or another
    `step`'s). A record of an earlier troupe that names no step is taken as the one asked for."""
    found = json_object(folder / name)
    if found is None or (step and found.get("step", step) != step):
        return None
    return found


def json_object(path: Path) -> dict | None:
    """A JSON object from a file troupe wrote, or None: missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def weights_sha256(folder: Path) -> str | None:
    """The sha256 of a model folder's weights file (the adapter's, or a merged model's first)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return sha256_file(folder / name)
    shards = sorted(folder.glob("model-*.safetensors"))
    return sha256_file(shards[0]) if shards else None


# ---- training runs -------------------------------------------------------------------------------


def keep_training_log(run_dir: Path) -> None:
    """The newest checkpoint's trainer_state.json (losses per step) beside the final weights, then
    the checkpoints removed: the promoted folder holds the model, not its optimizer states."""
    saved = checkpoints(run_dir)
    state = saved[-1] / "trainer_state.json" if saved else None
    if state and not (run_dir / "trainer_state.json").is_file():
        shutil.copy2(state, run_dir / "trainer_state.json")
    for checkpoint in checkpoints(run_dir, complete=False):
        shutil.rmtree(checkpoint, ignore_errors=True)
    (run_dir / RUN_FINISHED).unlink(missing_ok=True)


def run_finished(run_dir: Path) -> dict | None:
    """The steps done and planned ({"global_step", "max_steps"}) from the plugin's record that this
    run's training loop reached its end, or None: Axolotl exits 0 after a Ctrl-C too, with the
    half-trained weights saved."""
    finished = read_record(run_dir, "train-loop", RUN_FINISHED)
    return {key: finished.get(key) for key in ("global_step", "max_steps")} if finished else None


def checkpoints(run_dir: Path, complete: bool = True) -> list[Path]:
    """A run's checkpoint-<step> folders, oldest first: those the Trainer finished writing (it writes
    trainer_state.json last; a Ctrl-C while saving leaves one without it), or all of them."""
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.rpartition("-")[2].isdigit()]
    found = [p for p in found if not complete or (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.rpartition("-")[2]))


def checkpoint_progress(checkpoint: Path) -> str:
    """'step N of M' from a checkpoint's trainer state, or its folder name."""
    state = json_object(checkpoint / "trainer_state.json") or {}
    step, planned = state.get("global_step"), state.get("max_steps")
    return f"step {step} of {planned}" if isinstance(step, int) and isinstance(planned, int) else checkpoint.name


def interrupted_runs(layout: Layout) -> list[Path]:
    """Run folders that never finished (no record): training was interrupted or failed."""
    runs = layout.runs_dir
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


# ---- which model a consumer loads ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    kind: str  # "merged" or "adapter"
    folder: Path  # the merged model, or the adapter folder (loaded onto the base model)
    note: str  # one line saying which, and why


def adapter_record(layout: Layout) -> dict:
    """The current adapter's record, or TroupeError with the command that makes one."""
    record = read_record(layout.adapter_dir, "train")
    if record is None:
        raise TroupeError(f"{no_adapter(layout)}; run: make train CHARACTER={layout.slug}")
    return record


def no_adapter(layout: Layout) -> str:
    """What there is instead of a trained adapter (an interrupted run, or nothing)."""
    interrupted = interrupted_runs(layout)
    why = f" (the last run, {layout.rel(interrupted[-1])}, did not finish)" if interrupted else ""
    return f"no trained adapter in {layout.rel(layout.adapter_dir)}{why}"


def training_config(layout: Layout, folder: Path | None = None) -> dict:
    """The config Axolotl trained with: the current adapter's, or a run folder's (train.resolved.yaml)."""
    import yaml

    path = (folder or layout.adapter_dir) / TRAINING_CONFIG
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        why = "not a mapping"
    except (OSError, yaml.YAMLError) as exc:
        config, why = None, exc
    if isinstance(config, dict):
        return config
    raise TroupeError(f"{layout.rel(path)} cannot be read ({why}); train again: make train CHARACTER={layout.slug}")


def merged_is_current(layout: Layout, adapter: dict) -> bool:
    merged = read_record(layout.merged_dir, "merge")
    return bool(merged) and merged.get("adapter_sha256") == adapter.get("adapter_sha256")


def model_to_load(layout: Layout) -> ModelChoice:
    """The merged model when it was made from the current adapter, else base + adapter."""
    adapter = adapter_record(layout)
    if merged_is_current(layout, adapter):
        return ModelChoice("merged", layout.merged_dir, f"loading the merged model {layout.rel(layout.merged_dir)}")
    stale = (
        " (outputs' merged/ is from an older adapter: make merge refreshes it)" if layout.merged_dir.is_dir() else ""
    )
    note = f"loading base model + adapter {layout.rel(layout.adapter_dir)}{stale}"
    return ModelChoice("adapter", layout.adapter_dir, note)


def status(layout: Layout) -> list[str]:
    """Words for `troupe list`: what exists and is complete, what is stale or interrupted."""
    words = []
    adapter = read_record(layout.adapter_dir, "train")
    if adapter:
        words.append("adapter")
        if layout.merged_dir.is_dir():
            words.append("merged" if merged_is_current(layout, adapter) else "merged (stale)")
    if interrupted_runs(layout):
        words.append("interrupted run")
    return words
