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


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root in a temporary folder with the repository's recipes, selected via TROUPE_ROOT."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
    return tmp_path
