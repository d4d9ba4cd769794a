"""The code stays as the style guide asks (ruff: pyflakes, pycodestyle, import order, bugbear)."""

import subprocess
import sys

from helpers import REPO


def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
