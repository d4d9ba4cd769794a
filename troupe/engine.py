"""Run Axolotl's CLI on a resolved config: `axolotl preprocess|train|merge-lora <config>`.

Axolotl is a subprocess (its `train` execs `accelerate launch`), started with the environment from
`troupe.render.run_env` (telemetry off, the venv's tools on PATH) in the project root, so the
recipe's relative paths (datasets/…, outputs/…) mean the same thing they do in the recipe.
"""

import shlex
import subprocess
import sys
from pathlib import Path

from troupe.errors import TroupeError


class StepFailed(TroupeError):
    """An Axolotl step exited non-zero; the CLI exits with the same code."""

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode


def run_axolotl(verb: str, config_path: Path, root: Path, env: dict, extra: list[str] = ()) -> None:
    """Run one Axolotl command with its output streamed live; raise StepFailed on failure."""
    cmd = [sys.executable, "-m", "axolotl.cli.main", verb, str(config_path), *extra]
    print(f"$ axolotl {verb} {shlex.join([str(config_path), *extra])}", flush=True)
    returncode = subprocess.run(cmd, cwd=root, env=env).returncode
    if returncode:
        raise StepFailed(f"axolotl {verb} failed (exit {returncode}); its output above says why", returncode)
