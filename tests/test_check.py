"""troupe check: every problem at once (file, key, problem, fix), exit 1, no traceback."""

import re
import subprocess
import sys
import textwrap

import pytest

from troupe.cli import main
from troupe.errors import TroupeError
from troupe.project import resolve_recipe

BROKEN = textwrap.dedent("""\
    # A recipe with four classic mistakes.
    troupe:
      character: {name: 闻钟}
      source: {converter: arknights, files: [recipes/demo/*.json], nickname: 博士, nickname_typo: x}
      dataset: {context_line: 3}
    base_model: google/gemma-2-2b-it
    chat_template: gemma
    adapter: lora
    lora_r: eight
    lora_alpah: 16
    datasets:
      - path: datasets/broken/train.jsonl
        type: chat_template
        roles_to_trian: [assistant]
    output_dir: outputs/broken
""")


@pytest.fixture
def broken(project):
    path = project / "recipes" / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


def run_check(cli, name: str) -> tuple[int, str]:
    done = cli("check", name)
    return done.returncode, done.stdout + done.stderr


def test_every_problem_is_reported_in_one_run(broken, cli):
    code, out = run_check(cli, "broken")
    assert code == 1
    expected = [
        ("lora_alpah", "did you mean 'lora_alpha'?"),  # typo'd Axolotl key
        ("datasets[0].roles_to_trian", "did you mean 'roles_to_train'?"),  # typo inside datasets[]
        ("lora_r", "valid integer"),  # wrong type, from Axolotl's own validator
        ("seed", "add `seed: 42`"),  # missing seed
        ("eot_tokens", "<end_of_turn>"),  # Gemma template without eot_tokens
        ("troupe.dataset.context_line", "did you mean 'context_lines'?"),  # unknown troupe key
        ("troupe.source.nickname_typo", "unknown key"),  # unknown converter option
    ]
    for key, text in expected:
        block = next((b for b in out.split("\n  recipes/") if f": {key}:" in b), "")
        assert text in block, f"{key}: expected {text!r} in:\n{out}"
    assert "Traceback" not in out


def test_a_good_recipe_passes(project, cli):
    (project / "models" / "tiny").mkdir(parents=True)
    (project / "datasets" / "demo").mkdir(parents=True)
    for split in ("train", "validation"):
        (project / "datasets" / "demo" / f"{split}.jsonl").write_text("")
    code, out = run_check(cli, "demo")
    assert code == 0 and "recipes/demo.yaml: OK" in out


def test_unknown_name_lists_known_recipes_with_did_you_mean(project):
    with pytest.raises(TroupeError, match=r"no recipe named .kaltsi. \(did you mean .kaltsit.\?\)\n.*demo, .*kaltsit"):
        resolve_recipe("kaltsi", project)


@pytest.mark.parametrize("name", ["x; rm -rf ~", "../etc/passwd", "Kaltsit", "a b"])
def test_names_that_are_not_slugs_are_refused(project, name):
    with pytest.raises(TroupeError):
        resolve_recipe(name, project)


def test_a_path_anywhere_works_and_bad_file_names_are_reported(project, tmp_path, cli):
    elsewhere = tmp_path / "elsewhere" / "Bad-Name.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text((project / "recipes" / "demo.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    code, out = run_check(cli, str(elsewhere))
    assert code == 1 and "'Bad-Name' is not a valid recipe name" in out


@pytest.mark.slow  # a process of its own imports Axolotl (10-30 s)
def test_cli_exit_code_and_no_traceback(broken):
    done = subprocess.run([sys.executable, "-m", "troupe", "check", "broken"], capture_output=True, text=True)
    assert done.returncode == 1
    assert "lora_alpah" in done.stderr and "Traceback" not in done.stderr


def test_what_steps_build_is_a_note_not_an_error(project, cli):
    """On a fresh clone nothing is built yet; `make train` would build it, so `check` passes."""
    code, out = run_check(cli, "demo")
    assert code == 0 and "recipes/demo.yaml: OK" in out
    assert "note: models/tiny is not a model folder" in out and "troupe tiny-model" in out
    assert "datasets/demo/manifest.json" in out and "make convert CHARACTER=demo" in out  # the file, the fix


def test_a_copied_recipe_never_points_at_another_slugs_files(project, cli):
    """`cp recipes/sherlock.yaml recipes/watson.yaml` with the old paths written in: refused."""
    text = (project / "recipes" / "sherlock.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  - type: chat_template", "  - path: datasets/sherlock/train.jsonl\n    type: chat_template", 1
    )
    (project / "recipes" / "watson.yaml").write_text(text + "output_dir: outputs/sherlock\n", encoding="utf-8")
    code, out = run_check(cli, "watson")
    assert code == 1
    assert "datasets[0].path: 'datasets/sherlock/train.jsonl' is not this recipe's path" in out
    assert "output_dir: 'outputs/sherlock' is not this recipe's path (this recipe's is outputs/watson)" in out


def test_check_validates_with_the_capabilities_of_the_training_machine(project, cli, monkeypatch):
    """On this CPU machine Axolotl's validator sees no bf16; rendered for CUDA it sees an H100-class GPU."""
    from troupe.launch import Launch
    from troupe.recipe import load_recipe
    from troupe.render import resolve
    from troupe.validate import training_capabilities

    recipe = load_recipe("kaltsit")
    cpu, _ = training_capabilities(resolve(recipe, cuda=False))
    gpu, _ = training_capabilities(resolve(recipe, cuda=True, launch=Launch(gpus=8)))
    assert (cpu["bf16"], cpu["n_gpu"]) == (False, 1) and (gpu["bf16"], gpu["n_gpu"]) == (True, 8)
    monkeypatch.setenv("TROUPE_DEVICE", "cuda")
    code, out = run_check(cli, "kaltsit")
    assert code == 0 and "CPU-safe" not in out


def test_dataset_entries_must_read_what_the_builder_writes(project, capsys):
    words = ["troupe.dataset.format=sharegpt", "troupe.dataset.builder=scene"]
    code = main(["check", "demo", *words])
    out = capsys.readouterr().err
    assert code == 1
    assert "datasets[0].field_messages: the sharegpt format keeps turns in 'conversations'" in out
    assert "datasets[0].message_property_mappings" in out and "test_datasets[0].message_field_training" in out
    fixed = [
        *words,
        "datasets.0.field_messages=conversations",
        "datasets.0.message_field_training=train",
        "datasets.0.message_property_mappings={role: from, content: value}",
    ]
    main(["check", "demo", *fixed])
    out = capsys.readouterr().err
    assert not re.search(r"yaml: datasets\[0\]\.(field_messages|message_property|message_field)", out)
    assert "yaml: test_datasets[0].field_messages" in out


def test_convert_checks_the_data_half_without_importing_axolotl(project):
    """`convert`, `speakers` and `discover` need no Axolotl: its import alone takes seconds."""
    script = (
        "import sys\nfrom troupe.cli import main\n"
        "assert main(['convert', 'demo']) == 0\n"
        "print('axolotl imported' if any(m.startswith('axolotl') for m in sys.modules) else 'no axolotl')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no axolotl")
