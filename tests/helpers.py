"""Helpers shared by the end-to-end tests (plain functions; fixtures live in conftest.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBUG_TOKEN_RE = re.compile(r"\((-?\d+), (\d+)\)")


def troupe(*args: str, root: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the troupe CLI in a subprocess against a project root; output is captured."""
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-m", "troupe", *args], env=env, capture_output=True, text=True)
    if check and done.returncode:
        raise AssertionError(f"troupe {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def plumbing_project(root: Path) -> Path:
    """A project at `root` with the repository's recipes, the demo dataset converted and a tiny model
    with random weights (for tests of the pipeline's plumbing, not of learning)."""
    import shutil

    shutil.copytree(REPO / "recipes", root / "recipes")
    troupe("convert", "demo", root=root)
    troupe("tiny-model", "--untrained", root=root)
    return root


def trained_spans(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """The runs of consecutive trained positions (label != -100), as token ids."""
    spans, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != -100:
            assert label == token, "a trained label must be the token itself"
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def prepared_rows(prepared_dir: Path) -> list[dict]:
    """Every tokenised row Axolotl wrote under a dataset_prepared_path."""
    from datasets import load_from_disk

    rows = []
    for folder in sorted(p for p in prepared_dir.iterdir() if p.is_dir()):
        rows += list(load_from_disk(str(folder)))
    return rows


def debug_label_pairs(output: str) -> list[tuple[int, int]]:
    """(label, token id) pairs printed by `axolotl preprocess --debug`."""
    return [(int(label), int(token)) for label, token in DEBUG_TOKEN_RE.findall(output)]


def save_as_trained_adapter(recipe, peft_model, tokenizer) -> None:
    """Put a PEFT model where `troupe train` promotes one (outputs/<slug>/adapter/), with the records
    consumers check: the training config and troupe.json (as a finished run writes them)."""
    from troupe import dataset, provenance
    from troupe.render import resolve, write_resolved

    folder = recipe.layout.adapter_dir
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_resolved(recipe, resolve(recipe, cuda=False), folder / "train.resolved.yaml", "train")
    manifest = dataset.read_manifest(recipe) or {"files": {}}
    record = {
        "adapter_sha256": provenance.weights_sha256(folder),
        "dataset_splits": {name: entry["sha256"] for name, entry in manifest["files"].items()},
    }
    provenance.write_record(folder, provenance.record("train", record))
