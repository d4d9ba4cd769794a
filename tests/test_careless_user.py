"""What a careless user does by accident: a flag set to 0, a record file overwritten by hand, a base
model pointed at another character's outputs, GPUS=2 on a machine without them, a template path
that is a folder. Each is a clear one-line refusal that changes nothing."""

import subprocess

import pytest
from helpers import cli, run_make

from troupe import provenance
from troupe.cli import main
from troupe.recipe import load_recipe


def make(project, *words: str) -> subprocess.CompletedProcess:
    return run_make("-s", *words, root=project, timeout=300)


@pytest.mark.parametrize("no", ["0", "no", "false", "NO"])
@pytest.mark.slow  # make starts troupe in a process of its own
def test_allow_unsafe_that_says_no_means_no(project, no):
    done = make(project, "check", "CHARACTER=demo", "ARGS=trust_remote_code=true", f"ALLOW_UNSAFE={no}")
    assert done.returncode != 0 and "trust_remote_code" in done.stdout + done.stderr


@pytest.mark.slow  # make starts troupe in a process of its own
def test_force_that_says_no_does_not_overwrite(project):
    assert make(project, "new", "CHARACTER=amiya", "FROM=demo").returncode == 0
    before = (project / "recipes" / "amiya.yaml").read_bytes()
    again = make(project, "new", "CHARACTER=amiya", "FROM=kaltsit", "FORCE=0")
    assert again.returncode != 0 and "exists" in again.stderr
    assert (project / "recipes" / "amiya.yaml").read_bytes() == before


@pytest.mark.parametrize("flag", ["--allow-unsafe=maybe", "--force=2", "--dry-run=on"])
def test_a_flag_value_that_is_neither_yes_nor_no_is_an_error(project, flag, capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["check", "demo", flag])
    assert exit_code.value.code == 2 and "takes 1/true/yes or 0/false/no" in capsys.readouterr().err


@pytest.mark.slow  # make starts troupe in a process of its own
def test_gpus_without_cuda_stops_before_any_run_exists(project):
    done = make(project, "train", "CHARACTER=demo", "GPUS=2", "DRY_RUN=0")
    assert done.returncode != 0 and "needs CUDA GPUs" in done.stderr
    assert "$ axolotl train" not in done.stdout  # DRY_RUN=0 is not a dry run either
    assert not (project / "outputs" / "demo" / "runs").exists()


@pytest.mark.parametrize("text", ["[1]", '"x"', "3", "null", "{"])
def test_a_record_that_is_not_an_object_is_no_record(project, text):
    folder = project / "outputs" / "demo" / "adapter"
    folder.mkdir(parents=True)
    (folder / "troupe.json").write_text(text)
    assert provenance.read_record(folder) is None
    for verb in ("evaluate", "vllm", "serve"):
        done = cli(verb, "demo", root=project, check=False)
        assert done.returncode == 1 and "no trained adapter" in done.stderr and "Traceback" not in done.stderr
    assert "Traceback" not in cli("list", root=project).stderr


@pytest.mark.parametrize("base", ["outputs/demo/merged", "datasets/demo"])
def test_a_base_model_under_a_characters_outputs_is_refused(project, base):
    (project / base).mkdir(parents=True)
    done = cli("check", "demo", f"base_model={base}", root=project, check=False)
    assert done.returncode == 1 and "keep base models under models/" in done.stdout + done.stderr
    made = cli("tiny-model", "--out", base, root=project, check=False)
    assert made.returncode == 1 and "is not a folder under models/" in made.stderr
    assert not any((project / base).iterdir())


@pytest.mark.parametrize("template", ["recipes", "recipes/no_such.jinja"])
def test_a_template_file_that_is_a_folder_or_missing_is_refused(project, template):
    recipe = load_recipe("demo", [f"chat_template_jinja={template}"], root=project)
    from troupe.validate import template_file_problems

    (problem,) = template_file_problems(recipe.axolotl, project, "recipes/demo.yaml")
    assert problem.key == "chat_template_jinja" and template in problem.problem
    assert not template_file_problems(load_recipe("demo", root=project).axolotl, project, "recipes/demo.yaml")
