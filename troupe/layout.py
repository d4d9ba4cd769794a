"""Where a character's files live: every path that derives from a slug, in one place.

    layout = Layout(root, "kaltsit")
    layout.links            recipes/kaltsit.urls.txt     (the story links; troupe/converters/arknights.py)
    layout.split("train")   datasets/kaltsit/train.jsonl (written by `convert`, one unit)
    layout.adapter_dir      outputs/kaltsit/adapter      (a finished training run, promoted whole)

Recipes do not repeat these paths: troupe renders them into the Axolotl config (troupe.render), so a
copied recipe can never train on, or overwrite, another character's files. `base_model_location` is
the one answer to "is `base_model` a folder here (built or not yet) or a hub id?" for every verb.
"""

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

SPLITS = ("train", "validation", "test")
HELD_OUT = SPLITS[1:]  # scored, never trained on
SPLIT_OF_LIST = {"datasets": "train", "test_datasets": "validation"}  # the Axolotl list reading each split
RENDERED_KEYS = ("output_dir", "dataset_prepared_path", "lora_model_dir")  # Axolotl paths troupe fills in
RENDERED_ENTRY_KEY = "path"  # …and in each dataset list's entry (SPLIT_OF_LIST)
RECIPES_DIR, RECIPE_SUFFIX = "recipes", ".yaml"
MODELS_DIR = "models"  # base models troupe builds (`troupe base`, `troupe tiny-model`), never a slug's
STEP_DIRS = ("outputs", "datasets")  # what the steps write for each slug
MANIFEST = "manifest.json"
# The config each step gave Axolotl (troupe.render.write_resolved), kept where the step's result is:
TRAINING_CONFIG = "train.resolved.yaml"  # train: in the run folder, then the adapter
DRY_RUN_CONFIG = "train.dry-run.yaml"  # train --dry-run: what train would give Axolotl, in outputs/<slug>/
PREPROCESS_CONFIG = "preprocess.resolved.yaml"  # preprocess: in outputs/<slug>/
MERGE_CONFIG = "merge.resolved.yaml"  # merge: in merged/
# A model folder's tokenizer: what tokenising reads besides the splits (the prepared cache's key) and
# what merge copies from the adapter over the merged model (Axolotl's merge copies the base model's).
TOKENIZER_FILES = (
    "tokenizer.json tokenizer_config.json tokenizer.model special_tokens_map.json added_tokens.json vocab.json "
    "merges.txt chat_template.jinja chat_template.json"
).split()
METRICS, GENERATIONS = "metrics.json", "generations.csv"  # evaluate's scores and replies, in eval/


def split_file(name: str) -> str:
    """A split's file name, in datasets/<slug>/ and in its manifest's `files`."""
    return f"{name}.jsonl"


@dataclass(frozen=True)
class Layout:
    root: Path
    slug: str

    # ---- recipes/: configuration, shared by `troupe share` ---------------------------------------
    @property
    def recipe(self) -> Path:
        return self.root / RECIPES_DIR / f"{self.slug}{RECIPE_SUFFIX}"

    @property
    def links(self) -> Path:
        return self.root / RECIPES_DIR / f"{self.slug}.urls.txt"

    @property
    def lock(self) -> Path:
        return self.root / RECIPES_DIR / f"{self.slug}.lock.json"

    @property
    def sources(self) -> Path:
        """recipes/<slug>/: the recipe's own local source files (stories, chats, poems)."""
        return self.root / RECIPES_DIR / self.slug

    # ---- datasets/<slug>/: written by `convert` as one unit --------------------------------------
    @property
    def dataset_dir(self) -> Path:
        return self.root / "datasets" / self.slug

    def split(self, name: str) -> Path:
        return self.dataset_dir / split_file(name)

    @property
    def manifest(self) -> Path:
        return self.dataset_dir / MANIFEST

    @property
    def kept_rejects(self) -> Path:
        """datasets/<slug>.rejects.jsonl: a failed build's rejects, beside the dataset it left as it was."""
        return self.dataset_dir.with_name(f"{self.slug}.rejects.jsonl")

    def prepared(self, key: str) -> Path:
        """Axolotl's tokenised copy of one exact dataset (`key`: a hash of the splits); outside
        datasets/<slug>/, so a rebuilt dataset replaces that folder whole."""
        return self.root / "datasets" / ".prepared" / self.slug / key

    @property
    def download_cache(self) -> Path:
        """datasets/.cache/: what converters download (story files), shared by every slug."""
        return self.root / "datasets" / ".cache"

    # ---- outputs/<slug>/: runs, the promoted adapter, merged model, evaluation ---------------------
    @property
    def output_dir(self) -> Path:
        return self.root / "outputs" / self.slug

    @property
    def adapter_dir(self) -> Path:
        return self.output_dir / "adapter"

    @property
    def dry_run_config(self) -> Path:
        return self.output_dir / DRY_RUN_CONFIG

    @property
    def preprocess_config(self) -> Path:
        return self.output_dir / PREPROCESS_CONFIG

    @property
    def runs_dir(self) -> Path:
        """outputs/<slug>/runs/<id>: where Axolotl writes while it trains."""
        return self.output_dir / "runs"

    @property
    def merged_dir(self) -> Path:
        return self.output_dir / "merged"

    @property
    def eval_dir(self) -> Path:
        return self.output_dir / "eval"

    @property
    def metrics(self) -> Path:
        return self.eval_dir / METRICS

    @property
    def export_dir(self) -> Path:
        """GGUF files for llama.cpp, LM Studio and Ollama (troupe.export)."""
        return self.output_dir / "export"

    def export_files(self, folder: Path | None = None) -> "ExportFiles":
        """The export's files, in export_dir or in the folder it is being built in."""
        return ExportFiles(folder or self.export_dir, self.slug)

    @property
    def preflight(self) -> Path:
        """This node's fingerprint for a multi-node run (troupe.preflight); its verdict and log beside it."""
        return self.output_dir / "preflight.json"

    @property
    def share_dir(self) -> Path:
        return self.output_dir / "share"

    @property
    def shared_recipe(self) -> Path:
        """The recipe as `troupe share` writes it (and `troupe verify` reads it back)."""
        return self.share_dir / f"{self.slug}.recipe.yaml"

    def rel(self, path: Path) -> str:
        """A path as recipes, configs and manifests write it: relative to the project root."""
        return Path(path).relative_to(self.root).as_posix()

    def owns(self, relative: str) -> bool:
        """Whether a project-relative file under recipes/ belongs to this slug: its recipe, link list,
        lock, or a file under recipes/<slug>/."""
        own_files = {self.rel(p) for p in (self.recipe, self.links, self.lock)}
        return relative in own_files or relative.startswith(self.rel(self.sources) + "/")


def base_folder_problem(value: str) -> str | None:
    """Why a project path may not be a base model (or tokenizer), or None: a folder under outputs/
    or datasets/ is a character's, which its steps replace (a recipe training on demo's merged model
    would be rebuilt under it by `troupe tiny-model`, or change when demo is merged again)."""
    top = Path(value).parts[0] if Path(value).parts else ""
    if top in STEP_DIRS:
        steps = f"'{value}' is under {top}/, which troupe's steps write for a character"
        return f"{steps}: keep base models under {MODELS_DIR}/"
    return None


def built_model_problem(value: str) -> str | None:
    """Why troupe may not build a model into this project path, or None: only under models/."""
    parts = Path(value).parts
    if len(parts) < 2 or parts[0] != MODELS_DIR or ".." in parts:
        return f"'{value}' is not a folder under {MODELS_DIR}/, where troupe builds base models"
    return None


class Place(Enum):
    PRESENT = "a local folder that is there"
    MISSING = "a local folder that is not there (yet)"
    HUB = "a hub id"


@dataclass(frozen=True)
class ModelLocation:
    """Where a `base_model` (or tokenizer) is: `folder` is its full path when it is local."""

    value: str
    place: Place
    folder: Path | None = None

    @property
    def is_local(self) -> bool:
        """A folder, there or not: never asked of the hub (a missing one is an error, not a download)."""
        return self.place is not Place.HUB

    @property
    def load_from(self) -> str:
        """What transformers should load: the folder's full path, or the hub id unchanged."""
        return str(self.folder) if self.folder else self.value


LOCAL_PREFIXES = ("/", "~", "\\", "./", "../", f"{MODELS_DIR}/")


def base_model_location(value: object, root: Path) -> ModelLocation | None:
    """The one answer to "is `base_model` (or a tokenizer) local?" for every verb: a folder in the
    project, a path (absolute, ./…, ../…, or under models/, where troupe builds base models, there or
    not yet built), or else a hub id. None when the value is not a non-empty string."""
    if not isinstance(value, str) or not value or "\0" in value:
        return None
    folder = root / os.path.expanduser(value)
    if _is_dir(folder):
        return ModelLocation(value, Place.PRESENT, folder)
    drive = len(value) > 1 and value[1] == ":"
    if value.startswith(LOCAL_PREFIXES) or drive or Path(value).parts[0] in (MODELS_DIR, *STEP_DIRS):
        return ModelLocation(value, Place.MISSING, folder)
    return ModelLocation(value, Place.HUB)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long for the filesystem is no folder
        return False


def is_local_model(value: object, root: Path) -> bool:
    """True when `base_model` (or a tokenizer) names a local folder (built or not), False for a hub id."""
    location = base_model_location(value, root)
    return bool(location and location.is_local)


def model_location(value: str, root: Path) -> str:
    """What transformers should load: the folder's full path, or the hub id unchanged."""
    return base_model_location(value, root).load_from


@dataclass(frozen=True)
class ExportFiles:
    """The files of one export (troupe.export), by role."""

    folder: Path
    slug: str

    @property
    def f16(self) -> Path:
        return self.folder / f"{self.slug}-f16.gguf"

    @property
    def q8_0(self) -> Path:
        return self.folder / f"{self.slug}-q8_0.gguf"

    @property
    def lora(self) -> Path:
        return self.folder / f"{self.slug}-lora-f16.gguf"

    @property
    def base(self) -> Path:
        return self.folder / "base-f16.gguf"

    @property
    def modelfile(self) -> Path:
        return self.folder / "Modelfile"
