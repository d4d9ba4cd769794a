"""Shared fixtures: a throwaway project root (recipes copied in) so tests never write into the repo."""

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root in a temporary folder with the repository's recipes, selected via TROUPE_ROOT."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
    return tmp_path
