"""Config-only sharing: one YAML file holds a recipe, its link list and a lock, and whoever receives
it rebuilds exactly the same dataset — and can prove it.

    troupe share kaltsit              # → outputs/kaltsit/share/kaltsit.recipe.yaml
    troupe import kaltsit.recipe.yaml # → recipes/kaltsit.yaml, recipes/kaltsit.urls.txt, recipes/kaltsit.lock.json
    troupe verify kaltsit             # rebuild from source in a temporary folder, compare with the lock

The lock: the sha256 of every split and of every source file, a short hash of every sample, the
counts, and the troupe, converter and Axolotl versions. No data, no paths from the sharer's machine,
no secrets (a recipe holding a key, token or password is refused; URL credentials and the judge key
are redacted wherever they stand, comments and the link list included: troupe.redact).

A shared file is untrusted (SECURITY.md). `import` checks its shape (`ShareDocument`, the lock
included) and the recipe's safety policy before writing anything, and writes only what belongs to
the shared slug: recipes/<slug>.yaml, its lock, its link list and text files under recipes/<slug>/
— never a .py file, never another recipe's file, never over an existing file without FORCE=1. It is
written aside first and moved in whole (`write_import`): an import that fails leaves nothing.
"""

import json
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from troupe import __version__, dataset, policy, validate
from troupe.errors import TroupeError
from troupe.files import (
    atomic_write_text,
    json_text,
    new_dir_beside,
    read_utf8,
    replace_dir,
    sha256_bytes,
    sha256_file,
)
from troupe.layout import SPLITS, Layout
from troupe.project import SLUG_RE, SLUG_RULE
from troupe.recipe import MAX_RECIPE_BYTES, Recipe, parse_yaml
from troupe.redact import redacted

SHARE_FORMAT = 1
MAX_SHARE_BYTES = 64_000_000  # the lock of a 1M-sample dataset is ~20 MB; the recipe itself stays ≤ 1 MB
SHARED_SUFFIXES = (".txt", ".json", ".jsonl", ".csv", ".tsv")  # link lists and the recipe's own source files
SHA256 = r"^[0-9a-f]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitLock(Strict):
    samples: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256)
    sample_hashes: list[str] = Field(default_factory=list)


class SourceLock(Strict):
    path: str
    sha256: str = Field(pattern=SHA256)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if path.startswith(("/", "\\", "~")) or ".." in PurePosixPath(path).parts or ":" in path:
            raise ValueError("a source path is relative (a story path or a file of the project)")
        return path


class Lock(Strict):
    """What a shared recipe's dataset was: checked at import, read by verify."""

    splits: dict[Literal[SPLITS], SplitLock]
    sources: list[SourceLock]
    counts: dict = Field(default_factory=dict)
    missing: list[dict] = Field(default_factory=list)
    troupe: str | None = None
    axolotl: str | None = None
    converter: str | None = None
    converter_sha256: str | None = None


class ShareDocument(Strict):
    troupe_share: Literal[SHARE_FORMAT]
    slug: str
    recipe: str = Field(max_length=MAX_RECIPE_BYTES)
    files: dict[str, str] = Field(default_factory=dict)
    lock: Lock

    @field_validator("slug")
    @classmethod
    def _a_recipe_name(cls, slug: str) -> str:
        if not SLUG_RE.match(slug):
            raise ValueError(f"not a recipe name ({SLUG_RULE})")
        return slug


class LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the recipe, link lists) as readable `|` blocks."""


LiteralDumper.add_representer(
    str, lambda dumper, s: dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)
)


def sample_hashes(path: Path) -> list[str]:
    """A short hash of each sample (JSONL line), to tell by how many samples two splits differ."""
    return [sha256_bytes(line)[:16] for line in path.read_bytes().splitlines() if line.strip()]


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
    links = recipe.layout.links
    return {recipe.layout.rel(links): read_utf8(links, what="a link list")} if links.is_file() else {}


def share(recipe: Recipe) -> Path:
    """Write outputs/<slug>/share/<slug>.recipe.yaml for the recipe's current dataset (checked by
    troupe.plan with Needs.SHARE: no key that looks like a secret)."""
    manifest = dataset.read_manifest(recipe)
    if not manifest or not dataset.is_current(recipe):
        raise TroupeError(f"the dataset is missing or stale; run: make convert CHARACTER={recipe.slug}")
    if any(o.startswith("troupe.") for o in manifest["overrides"]):
        raise TroupeError("the dataset was built with troupe.* overrides; put them in the recipe, then convert again")
    document = redacted(
        {
            "troupe_share": SHARE_FORMAT,
            "slug": recipe.slug,
            "recipe": read_utf8(recipe.path, MAX_RECIPE_BYTES, "a recipe"),
            "files": companion_files(recipe),
            "lock": lock_of(recipe, manifest),
        }
    )
    path = recipe.layout.shared_recipe
    header = f"# troupe shared recipe '{recipe.slug}': import with `troupe import {path.name}`, then `make verify`.\n"
    atomic_write_text(
        path, header + yaml.dump(document, Dumper=LiteralDumper, allow_unicode=True, sort_keys=False, width=1000)
    )
    return path


def read_share(path: Path) -> ShareDocument:
    """A shared recipe file, its whole shape checked (the lock too); TroupeError says what is wrong."""
    data = parse_yaml(read_utf8(path, MAX_SHARE_BYTES, "a shared recipe"), str(path))
    if not isinstance(data, dict) or data.get("troupe_share") != SHARE_FORMAT:
        raise TroupeError(f"{path}: not a troupe shared recipe (it has no `troupe_share: {SHARE_FORMAT}`)")
    try:
        return ShareDocument.model_validate(data)
    except ValidationError as exc:
        found = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise TroupeError(f"{path}: not a valid shared recipe ({found})") from None


def file_problem(name: str, layout: Layout) -> str | None:
    """Why a file in a share's file map may not be written, or None."""
    if policy.outside(name, layout.root) or not layout.owns(name):
        own = f"recipes/{layout.slug}.urls.txt and files under recipes/{layout.slug}/"
        return f"'{name}' does not belong to '{layout.slug}' (a share writes {own} only)"
    if name in (layout.rel(layout.recipe), layout.rel(layout.lock)):
        return f"'{name}' comes from the share's `recipe:` or `lock:`, not from its file map"
    if PurePosixPath(name).suffix not in SHARED_SUFFIXES:
        return f"'{name}' is not a link list or a data file ({', '.join(SHARED_SUFFIXES)}); code is never imported"
    return None


def planned_writes(document: ShareDocument, layout: Layout) -> dict[Path, str]:
    """Every file an import writes, recipe last."""
    writes = {layout.root / name: text for name, text in document.files.items()}
    writes[layout.lock] = json_text(document.lock.model_dump(mode="json", exclude_none=True))
    writes[layout.recipe] = document.recipe
    return writes


def import_share(path: Path, root: Path, force: bool = False, allow_unsafe: bool = False) -> Path:
    """Write the shared recipe, its files and its lock under recipes/, after the shape check and the
    safety policy; when anything is refused, nothing is written and every refusal is named."""
    document = read_share(path)
    layout = Layout(root, document.slug)
    refused = [why for name in document.files if (why := file_problem(name, layout))]
    writes = planned_writes(document, layout) if not refused else {}
    existing = [layout.rel(p) for p in replaced(writes, layout) if p.exists()]
    if existing and not force:
        refused.append(f"{', '.join(existing)} exists; pass FORCE=1 (--force) to replace it")
    if not allow_unsafe:
        refused += [str(p) for p in unsafe_problems(document.recipe, layout)]
    if refused:
        raise TroupeError(f"refused {path.name}; nothing was written:\n" + "\n".join(f"  {why}" for why in refused))
    write_import(writes, layout, path.name)
    return layout.recipe


def replaced(writes: dict[Path, str], layout: Layout) -> list[Path]:
    """What an import puts in place, each as one unit, the recipe last: recipes/<slug>/ whole (when the
    share has files in it: a story left from before would be read with the new ones), the link list,
    the lock, the recipe."""
    recipes = layout.recipe.parent
    return list(dict.fromkeys(recipes / target.relative_to(recipes).parts[0] for target in writes))


def write_import(writes: dict[Path, str], layout: Layout, share_name: str) -> None:
    """Write every file into a folder beside recipes/<slug>/, then move each unit in: a file that cannot
    be written (a name too long, a file where a folder must go) fails the import with nothing in place."""
    recipes = layout.recipe.parent
    stage = new_dir_beside(layout.sources)
    try:
        for target, text in writes.items():
            try:
                atomic_write_text(stage / target.relative_to(recipes), text)
            except OSError as exc:
                raise TroupeError(
                    f"refused {share_name}; nothing was written: {layout.rel(target)}: {exc.strerror or exc}"
                ) from None
        for unit in replaced(writes, layout):
            replace_dir(stage / unit.name, unit)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def unsafe_problems(text: str, layout: Layout) -> list:
    """The policy's findings on a recipe text, and paths that are not its slug's, before anything is
    written."""
    data = parse_yaml(text, layout.rel(layout.recipe))
    if not isinstance(data, dict):
        raise TroupeError(f"{layout.rel(layout.recipe)}: a recipe is a YAML mapping")
    block = data.get("troupe") if isinstance(data.get("troupe"), dict) else {}
    config = {key: value for key, value in data.items() if key != "troupe"}
    recipe = Recipe(path=layout.recipe, root=layout.root, troupe=block, axolotl=config)
    where = layout.rel(layout.recipe)
    return policy.problems(config, block, layout.root, where) + validate.layout_problems(recipe, where)


def find_lock(recipe: Recipe) -> Lock:
    """The recipe's lock (recipes/<slug>.lock.json, or the one in its own share file), checked."""
    layout = recipe.layout
    shared = layout.shared_recipe
    if layout.lock.is_file():
        try:
            return Lock.model_validate(json.loads(read_utf8(layout.lock, MAX_SHARE_BYTES, "a lock")))
        except (ValueError, ValidationError) as exc:
            raise TroupeError(f"{layout.rel(layout.lock)}: not a valid lock ({str(exc).splitlines()[0]})") from None
    if shared.is_file():
        return read_share(shared).lock
    raise TroupeError(
        f"no lock for {recipe.slug}: `troupe import` writes {layout.rel(layout.lock)}, `make share` writes one"
    )


def differences(lock: Lock, manifest: dict, folder: Path) -> list[str]:
    """What differs between a lock and a fresh build in `folder`: source files, then splits."""
    found = []
    locked = {s.path: s.sha256 for s in lock.sources}
    built = {s["path"]: s["sha256"] for s in manifest["sources"]}
    for path in sorted(locked.keys() | built.keys()):
        if path not in built:
            found.append(f"source {path}: in the lock, missing now")
        elif path not in locked:
            found.append(f"source {path}: new, not in the lock")
        elif locked[path] != built[path]:
            found.append(f"source {path}: changed (sha256 {locked[path][:12]}… → {built[path][:12]}…)")
    for name, entry in lock.splits.items():
        now = manifest["files"].get(name, {})
        if now.get("sha256") != entry.sha256:
            was, new = set(entry.sample_hashes), set(sample_hashes(folder / now.get("path", f"{name}.jsonl")))
            found.append(
                f"split {name}: {len(new - was)} sample(s) new, {len(was - new)} gone "
                f"({entry.samples} → {now.get('samples', 0)} samples)"
            )
    return found


def verify(recipe: Recipe, command: str) -> list[str]:
    """Rebuild the dataset of a checked recipe (troupe.plan) from its sources in a temporary folder
    and compare with the lock; [] means identical. The dataset an adapter was trained on
    (datasets/<slug>/) is never touched."""
    lock = find_lock(recipe)
    recipe.dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=recipe.dataset_dir.parent, prefix=f".verify-{recipe.slug}-"))
    try:
        manifest = dataset.build(recipe, command, out=scratch / recipe.slug)
        return differences(lock, manifest, scratch / recipe.slug)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
