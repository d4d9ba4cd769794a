"""Config-only sharing: one YAML file holds a recipe, its link list and a lock, and whoever receives
it rebuilds exactly the same dataset — and can prove it.

    troupe share kaltsit              # → outputs/kaltsit/share/kaltsit.recipe.yaml
    troupe import kaltsit.recipe.yaml # → recipes/kaltsit.yaml, recipes/kaltsit.urls.txt, recipes/kaltsit.lock.json
    troupe verify kaltsit             # rebuild from source, compare with the lock

The lock: the sha256 of every split and of every source file, a short hash of every sample, the
counts, and the troupe, converter and Axolotl versions. No data, no paths from the sharer's machine,
no secrets (a recipe holding a key, token or password is refused).
"""

import json
import re
import tempfile
from pathlib import Path

import yaml

from troupe import __version__, dataset, pipeline, policy
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, json_text, sha256_bytes, sha256_file
from troupe.project import SLUG_RE, relative_to_root
from troupe.recipe import Recipe, load_recipe, read_yaml

SHARE_FORMAT = 1
SECRET_KEY_RE = re.compile(
    r"(api_?key|access_?key|password|secret|^token$|(hf|hub|auth|access|api)_token)", re.IGNORECASE
)


class LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the recipe, link lists) as readable `|` blocks."""


LiteralDumper.add_representer(
    str, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)
)


def sample_hashes(path: Path) -> list[str]:
    """A short hash of each sample (JSONL line), to tell by how many samples two splits differ."""
    return [sha256_bytes(line)[:16] for line in path.read_bytes().splitlines() if line.strip()]


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


def lock_of(recipe: Recipe, manifest: dict) -> dict:
    import axolotl

    module, options = dataset.converter_options(recipe)
    return {
        "troupe": __version__,
        "axolotl": axolotl.__version__,
        "converter": options.converter,
        "converter_sha256": sha256_file(Path(module.__file__)),
        "splits": {
            name: {
                "samples": entry["samples"],
                "sha256": entry["sha256"],
                "sample_hashes": sample_hashes(recipe.dataset_dir / entry["path"]),
            }
            for name, entry in manifest["files"].items()
        },
        "sources": manifest["sources"],
        "counts": manifest["counts"],
        "missing": manifest["missing"],
    }


def companion_files(recipe: Recipe) -> dict[str, str]:
    """Files the recipe needs that are configuration, not data: its link list."""
    urls = recipe.troupe.get("source", {}).get("urls") if isinstance(recipe.troupe.get("source"), dict) else None
    return {urls: (recipe.root / urls).read_text(encoding="utf-8")} if isinstance(urls, str) else {}


def share(recipe: Recipe) -> Path:
    """Write outputs/<slug>/share/<slug>.recipe.yaml for the recipe's current dataset."""
    if found := secrets_in({**recipe.axolotl, "troupe": recipe.troupe}):
        raise TroupeError(
            f"{recipe.path.name} holds what looks like a secret ({', '.join(found)}); "
            "move it to the environment before sharing"
        )
    manifest = dataset.read_manifest(recipe)
    if not manifest or not dataset.is_current(recipe):
        raise TroupeError(f"the dataset is missing or stale; run: make convert CHARACTER={recipe.slug}")
    if any(o.startswith("troupe.") for o in manifest["overrides"]):
        raise TroupeError("the dataset was built with troupe.* overrides; put them in the recipe, then convert again")
    document = {
        "troupe_share": SHARE_FORMAT,
        "slug": recipe.slug,
        "recipe": recipe.path.read_text(encoding="utf-8"),
        "files": companion_files(recipe),
        "lock": lock_of(recipe, manifest),
    }
    path = recipe.output_dir / "share" / f"{recipe.slug}.recipe.yaml"
    header = f"# troupe shared recipe '{recipe.slug}': import with `troupe import {path.name}`, then `make verify`.\n"
    atomic_write_text(
        path, header + yaml.dump(document, Dumper=LiteralDumper, allow_unicode=True, sort_keys=False, width=1000)
    )
    return path


def read_share(path: Path, root: Path) -> dict:
    """A shared recipe file, its shape checked; TroupeError says what is wrong."""
    document = read_yaml(path)
    problems = []
    if not isinstance(document, dict) or document.get("troupe_share") != SHARE_FORMAT:
        raise TroupeError(f"{path}: not a troupe shared recipe (troupe_share: {SHARE_FORMAT})")
    if not isinstance(document.get("slug"), str) or not SLUG_RE.match(document["slug"]):
        problems.append("slug: missing or not a valid recipe name")
    if not isinstance(document.get("recipe"), str):
        problems.append("recipe: missing")
    files = document.get("files") or {}
    for name, text in files.items() if isinstance(files, dict) else [("files", None)]:
        if not isinstance(text, str) or not str(name).startswith("recipes/") or policy.outside(str(name), root):
            problems.append(f"files: '{name}' must be text to write under recipes/")
    if not isinstance(document.get("lock"), dict):
        problems.append("lock: missing")
    if problems:
        raise TroupeError(f"{path}: " + "; ".join(problems))
    return document


def import_share(path: Path, root: Path, force: bool = False, allow_unsafe: bool = False) -> Path:
    """Write the shared recipe, its files and its lock under recipes/, after the policy check."""
    document = read_share(path, root)
    slug = document["slug"]
    dest = root / "recipes" / f"{slug}.yaml"
    if dest.exists() and not force:
        raise TroupeError(f"{relative_to_root(dest, root)} exists; pass FORCE=1 (--force) to overwrite it")
    refused = unsafe_problems(document["recipe"], slug, root) if not allow_unsafe else []
    if refused:
        raise TroupeError("refused, this recipe is unsafe:\n" + "\n".join(f"  {p}" for p in refused))
    atomic_write_text(dest, document["recipe"])
    for name, text in document["files"].items():
        atomic_write_text(root / name, text)
    atomic_write_text(root / "recipes" / f"{slug}.lock.json", json_text(document["lock"]))
    return dest


def unsafe_problems(text: str, slug: str, root: Path) -> list:
    """The policy findings of a recipe text, checked before anything is written."""
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / f"{slug}.yaml"
        candidate.write_text(text, encoding="utf-8")
        recipe = load_recipe(str(candidate), root=root)
        return policy.problems(recipe.axolotl, recipe.troupe, root, f"recipes/{slug}.yaml")


def find_lock(recipe: Recipe) -> dict:
    lock_file = recipe.path.with_name(f"{recipe.slug}.lock.json")
    shared = recipe.output_dir / "share" / f"{recipe.slug}.recipe.yaml"
    if lock_file.is_file():
        return json.loads(lock_file.read_text(encoding="utf-8"))
    if shared.is_file():
        return read_share(shared, recipe.root)["lock"]
    raise TroupeError(f"no lock for {recipe.slug}: `troupe import` writes {lock_file.name}, `make share` writes one")


def differences(lock: dict, manifest: dict, recipe: Recipe) -> list[str]:
    """What differs between a lock and a fresh build: source files, then splits (by how many samples)."""
    found = []
    locked = {s["path"]: s["sha256"] for s in lock["sources"]}
    built = {s["path"]: s["sha256"] for s in manifest["sources"]}
    for path in sorted(locked.keys() | built.keys()):
        if path not in built:
            found.append(f"source {path}: in the lock, missing now")
        elif path not in locked:
            found.append(f"source {path}: new, not in the lock")
        elif locked[path] != built[path]:
            found.append(f"source {path}: changed (sha256 {locked[path][:12]}… → {built[path][:12]}…)")
    for name, entry in lock["splits"].items():
        now = manifest["files"].get(name, {})
        if now.get("sha256") != entry["sha256"]:
            was, new = set(entry["sample_hashes"]), set(sample_hashes(recipe.dataset_dir / now.get("path", "")))
            found.append(
                f"split {name}: {len(new - was)} sample(s) new, {len(was - new)} gone "
                f"({entry['samples']} → {now.get('samples', 0)} samples)"
            )
    return found


def verify(recipe: Recipe, command: str) -> list[str]:
    """Rebuild the dataset from its sources and compare with the lock; [] means identical."""
    lock = find_lock(recipe)
    pipeline.checked(recipe, need_data=False)
    return differences(lock, dataset.build(recipe, command), recipe)
