"""troupe.engine: Axolotl runs as a subprocess and its exit code reaches the user."""

import pytest

from troupe.engine import StepFailed, run_axolotl
from troupe.render import run_env


@pytest.mark.slow  # starts Axolotl's CLI
def test_a_failing_axolotl_step_raises_with_its_exit_code(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("base_model: x\n")
    with pytest.raises(StepFailed) as failed:
        run_axolotl("no-such-verb", config, tmp_path, run_env({}, tmp_path))
    assert failed.value.returncode == 2  # click's usage error, passed through unchanged
