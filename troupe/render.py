"""Render a recipe into the config Axolotl receives, and the environment it runs in.

    resolved = resolve(recipe, manifest)             # paths from the slug, CPU-safe if no CUDA
    write_resolved(recipe, resolved, path, "train")  # what Axolotl receives, with a header

What troupe changes, and why:
- Every path comes from the slug (troupe.layout): the dataset entries read datasets/<slug>/, the
  output goes under outputs/<slug>/, a two-stage recipe starts from its first stage's adapter.
- Every config gets troupe's Axolotl plugin (troupe/axolotl_plugin.py): it seeds before the LoRA's
  initial weights are drawn (the same recipe trains the same adapter), and records that a training
  run reached its planned end (a Ctrl-C'd run also exits 0).
- `dataset_prepared_path` is keyed on the dataset manifest's sha256: Axolotl's own cache key ignores
  file contents, so a rebuilt dataset would otherwise train on the stale tokenised copy.
- With no CUDA device, GPU-only settings are turned off (Axolotl's LoRA kernels, bf16/fp16,
  flash-attention, Liger) and attention is sdpa, announced in one line.
- Several CPU processes (NODES=2 without CUDA) get `max_memory: {cpu: …}` and ACCELERATE_USE_CPU=1:
  Axolotl would otherwise place each process's model on device LOCAL_RANK (a GPU that is not
  there), and accelerate would run each process alone instead of data-parallel over gloo.
"""

import copy
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from troupe.errors import TroupeError
from troupe.files import atomic_write_text, sha256_bytes, sha256_file
from troupe.launch import SINGLE, Launch
from troupe.layout import (
    RENDERED_ENTRY_KEY,
    SPLIT_OF_LIST,
    TOKENIZER_FILES,
    Place,
    base_model_location,
    is_local_model,
)
from troupe.project import did_you_mean, relative_to_root
from troupe.recipe import Recipe

CPU_SAFE = {
    "lora_mlp_kernel": False,
    "lora_qkv_kernel": False,
    "lora_o_kernel": False,
    "lora_embedding_kernel": False,
    "bf16": False,
    "fp16": False,
    "tf32": False,
    "flash_attention": False,
    "attn_implementation": "sdpa",
    "torch_compile": False,
}
GPU_ONLY_PLUGIN_WORDS = ("liger", "cut_cross_entropy")
TROUPE_PLUGIN = "troupe.axolotl_plugin.TroupePlugin"  # seeds the LoRA; records a run that reached its end
PARALLEL_DIR = Path(__file__).resolve().parent.parent / "configs" / "parallel"


CPU_PROCESSES = {"max_memory": {"cpu": "1024GiB"}}  # everything on the CPU (a cap no model reaches)
TRAIN_RUN_ID = "troupe"  # one constant rendezvous id: nodes that disagree meet, and the preflight says why


@dataclass
class Resolved:
    config: dict
    cuda: bool
    notes: list[str] = field(default_factory=list)
    launch: Launch = field(default_factory=Launch)
    env: dict = field(default_factory=dict)  # what the run needs in its environment beyond run_env
    parallel: str | None = None  # the multi-GPU setup (configs/parallel/<name>) it was resolved with

    def launcher_args(self) -> list[str]:
        """How `axolotl train` starts: in-process for one CPU process (accelerate adds nothing there
        but start-up time and warnings) and under Ray (Ray Train starts its own workers); accelerate
        with one process per GPU on one machine; torchrun's c10d rendezvous across machines."""
        if self.config.get("use_ray") or (not self.cuda and self.launch.processes == 1):
            return ["--launcher", "python"]
        if self.launch.nodes > 1:
            return ["--launcher", "torchrun", "--", *self.launch.torchrun_args(TRAIN_RUN_ID)]
        return ["--launcher", "accelerate", "--", "--num_processes", str(self.launch.gpus), "--num_machines", "1"]


def cuda_available() -> bool:
    """CUDA is there; TROUPE_DEVICE=cuda|cpu renders as if it were (or were not), for dry runs."""
    forced = os.environ.get("TROUPE_DEVICE")
    if forced in ("cuda", "cpu"):
        return forced == "cuda"
    import torch

    return torch.cuda.is_available()


def parallel_configs() -> dict[str, Path]:
    """Multi-GPU setups shipped in configs/parallel/, by name (the file name)."""
    return {p.stem: p for p in sorted(PARALLEL_DIR.glob("*")) if p.suffix in (".json", ".yaml")}


def parallel_settings(name: str, root: Path) -> dict:
    """The Axolotl keys for a multi-GPU setup: `deepspeed: <file>` for a DeepSpeed JSON, or the
    keys of a YAML file (FSDP)."""
    configs = parallel_configs()
    if name not in configs:
        raise TroupeError(f"no parallel setup '{name}'{did_you_mean(name, configs)}; known: {', '.join(configs)}")
    path = configs[name]
    if path.suffix == ".json":
        return {"deepspeed": relative_to_root(path, root)}
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def prepared_path(recipe: Recipe, manifest: dict, config: dict) -> str:
    """datasets/.prepared/<slug>/<hash>: of the splits' sha256 and the tokenizer's files, so a changed
    split or a rebuilt tokenizer at the same path means a new cache."""
    digests = "".join(manifest["files"][name]["sha256"] for name in sorted(manifest["files"]))
    digests += tokenizer_digest(config, recipe.root)
    return recipe.layout.rel(recipe.layout.prepared(sha256_bytes(digests.encode())[:16]))


def tokenizer_digest(config: dict, root: Path) -> str:
    """The sha256 of every tokenizer file of a local tokenizer (or base model) folder and of a
    template file: what tokenising reads besides the splits. A hub id is its name (Axolotl keys on it)."""
    places = [base_model_location(config.get(key), root) for key in ("tokenizer_config", "base_model")]
    folder = next((place.folder for place in places if place and place.place is Place.PRESENT), None)
    files = [folder / name for name in TOKENIZER_FILES] if folder else []
    template = config.get("chat_template_jinja")
    files += [root / template] if isinstance(template, str) and (root / template).is_file() else []
    return "".join(f"{path.name}:{sha256_file(path)}" for path in files if path.is_file())


def with_layout_paths(recipe: Recipe, config: dict) -> None:
    """The slug's paths into the config: dataset files, output folder, a first stage's adapter."""
    layout = recipe.layout
    for list_name, split in SPLIT_OF_LIST.items():
        entries = config.get(list_name)
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            config[list_name] = [{**entries[0], RENDERED_ENTRY_KEY: layout.rel(layout.split(split))}, *entries[1:]]
    config["output_dir"] = layout.rel(layout.output_dir)
    if first := recipe.first_stage:
        config["lora_model_dir"] = layout.rel(first.layout.adapter_dir)  # start from its adapter


def with_troupe_plugin(config: dict) -> None:
    """troupe's plugin in every config (troupe/axolotl_plugin.py): without it the adapter's initial
    weights change from run to run whatever `seed` says, and an interrupted run looks finished."""
    plugins = config.get("plugins") or []
    if isinstance(plugins, list):  # anything else is Axolotl's validator's to report
        config["plugins"] = [*(p for p in plugins if p != TROUPE_PLUGIN), TROUPE_PLUGIN]


def cpu_adjustments(config: dict) -> list[str]:
    """Turn off what needs a GPU; returns what the recipe had set otherwise, as 'key old → new'."""
    changed = [
        f"{key} {config[key]} → {value}" for key, value in CPU_SAFE.items() if key in config and config[key] != value
    ]
    config.update(CPU_SAFE)
    plugins = config.get("plugins")
    gpu_only = (
        [p for p in plugins if isinstance(p, str) and any(w in p for w in GPU_ONLY_PLUGIN_WORDS)]
        if isinstance(plugins, list)
        else []
    )
    if gpu_only:
        changed.append("plugins: dropped " + ", ".join(sorted(set(gpu_only))))
        config["plugins"] = [p for p in plugins if p not in gpu_only] or None
    for key in [k for k in config if k.startswith("liger_") and config[k]]:
        config[key] = False
        changed.append(f"{key} True → False")
    return changed


def resolve(
    recipe: Recipe,
    manifest: dict | None = None,
    cuda: bool | None = None,
    parallel: str | None = None,
    launch: Launch = SINGLE,
) -> Resolved:
    """The Axolotl config for this recipe, overrides applied and troupe's adjustments made."""
    config = copy.deepcopy(recipe.axolotl)
    if parallel:
        config.update(parallel_settings(parallel, recipe.root))
    with_layout_paths(recipe, config)
    with_troupe_plugin(config)
    notes = []
    if manifest:
        config["dataset_prepared_path"] = prepared_path(recipe, manifest, config)
    cuda = cuda_available() if cuda is None else cuda
    env = {}
    if not cuda:
        changed = cpu_adjustments(config)
        notes.append("no CUDA device: CPU-safe settings applied" + (f" ({', '.join(changed)})" if changed else ""))
    if not cuda and launch.processes > 1:
        config.update(CPU_PROCESSES)
        env["ACCELERATE_USE_CPU"] = "1"
        notes.append(
            f"{launch.processes} CPU processes: max_memory {CPU_PROCESSES['max_memory']}, ACCELERATE_USE_CPU=1"
        )
    if launch.processes > 1:
        notes.append(batch_arithmetic(config, launch))
    return Resolved(config, cuda, notes, launch, env, parallel)


def batch_arithmetic(config: dict, launch: Launch) -> str:
    micro, accumulation = config.get("micro_batch_size") or 1, config.get("gradient_accumulation_steps") or 1
    return (
        f"global batch: micro_batch_size {micro} × gradient_accumulation_steps {accumulation} × {launch.gpus} "
        f"process(es) per node × {launch.nodes} node(s) = {micro * accumulation * launch.processes} samples per step"
    )


def resolved_yaml(recipe: Recipe, resolved: Resolved, step: str) -> str:
    header = [f"# Resolved by troupe from {recipe.path.name} for `{step}`: exactly what Axolotl receives."]
    if recipe.override_texts:
        header.append(f"# overrides: {' '.join(recipe.override_texts)}")
    header += [f"# {note}" for note in resolved.notes]
    body = yaml.safe_dump(resolved.config, allow_unicode=True, sort_keys=False, width=100)
    return "\n".join(header) + "\n" + body


def write_resolved(recipe: Recipe, resolved: Resolved, path: Path, step: str) -> Path:
    """Write the config one step gives Axolotl to `path` (each step has its own file)."""
    atomic_write_text(path, resolved_yaml(recipe, resolved, step))
    return path


def wants_wandb(config: dict) -> bool:
    return bool(config.get("wandb_project") or config.get("use_wandb"))


def run_env(config: dict, root: Path) -> dict:
    """Environment for Axolotl: the venv's tools on PATH, telemetry off, W&B off unless asked for,
    the hub off when the base model is a local folder (built or not: a missing one is an error, never
    a download)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(AXOLOTL_DO_NOT_TRACK="1", DO_NOT_TRACK="1", TOKENIZERS_PARALLELISM="false")
    # Progress bars and losses always show; Axolotl's INFO adds a 400-line config dump, and other
    # libraries' warnings are mostly about GPU kernels a run does not use. Both can be turned back on.
    env.setdefault("AXOLOTL_LOG_LEVEL", "WARNING")
    env.setdefault("LOG_LEVEL", "ERROR")
    if not wants_wandb(config):
        env["WANDB_MODE"] = "disabled"
    if is_local_model(config.get("base_model"), root):
        env["HF_HUB_OFFLINE"] = "1"
    return env
