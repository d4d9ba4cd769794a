"""Shared fixtures: a throwaway project root (recipes copied in) so tests never write into the repo."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The suite runs on several xdist workers at once: each gets its share of the cores for torch (and for
# every process it starts), instead of every worker spinning threads on all of them.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))

# The longest modules first, alternating between the two workers as xdist hands them out (each worker
# holds two at a time), the short ones after to fill in: no worker runs a 5-minute module alone at the
# end. Measured cost on 2 workers, s: demo_e2e 400, seed_recipes 330, multinode 145, integrity 260,
# attacks 100, real_model 95, gemma4_kaltsit 63, gemma_tokenizer 48 (pytest.ini keeps this order:
# --no-loadscope-reorder).
LONGEST_FIRST = [
    "test_demo_e2e.py",
    "test_seed_recipes.py",
    "test_multinode.py",
    "test_integrity.py",
    "test_attacks.py",
    "test_real_model.py",
    "test_gemma4_kaltsit.py",
    "test_gemma_tokenizer.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root in a temporary folder with the repository's recipes, selected via TROUPE_ROOT."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
    return tmp_path
