"""Recipes from strangers: each unsafe thing is refused with one clear line, and accepted with
--allow-unsafe; YAML alias bombs and shell-injection names never get anywhere."""

import os
import subprocess
from pathlib import Path

import pytest

from troupe.errors import TroupeError
from troupe.recipe import load_recipe, read_yaml
from troupe.render import resolve
from troupe.validate import check

REPO = Path(__file__).resolve().parent.parent

UNSAFE = [  # (override on the demo recipe, the key refused, words of the reason)
    ("trust_remote_code=true", "trust_remote_code", "runs Python code"),
    ("plugins=[evil.module.Plugin]", "plugins", "not one of Axolotl's own integrations"),
    ("datasets.0.type=mypackage.load_everything", "datasets[0].type", "not an Axolotl prompt strategy"),
    ("chat_template_jinja=../../etc/template.jinja", "chat_template_jinja", "contains '..'"),
    ("deepspeed=/opt/zero3.json", "deepspeed", "absolute path"),
    ("fsdp_config=../fsdp.yaml", "fsdp_config", "contains '..'"),
    ("output_dir=/tmp/elsewhere", "output_dir", "absolute path"),
    ("base_model=/home/someone/models/llama", "base_model", "local model"),
    ("base_model=../models/llama", "base_model", "contains '..'"),
    ("datasets.0.path=/etc/passwd", "datasets[0].path", "absolute path"),
    ("hub_model_id=someone/my-model", "hub_model_id", "upload"),
    ("push_dataset_to_hub=someone/data", "push_dataset_to_hub", "upload"),
    ("hub_strategy=every_save", "hub_strategy", "upload"),
    ("troupe.source.files=[/etc/*.json]", "troupe.source.files", "absolute path"),
    ("troupe.source.files=[../../secrets/*.json]", "troupe.source.files", "contains '..'"),
]


def findings(recipe) -> list[str]:
    return [str(p) for p in check(recipe, resolve(recipe, cuda=False), need_data=False) if "unsafe:" in p.problem]


def test_shipped_recipes_are_safe(project):
    for name in ("demo", "kaltsit", "yoda", "sherlock_qlora", "tang_poetry"):
        assert findings(load_recipe(name)) == [], name


@pytest.mark.parametrize("override, key, reason", UNSAFE, ids=[u[1] + ":" + u[0][:20] for u in UNSAFE])
def test_each_unsafe_setting_is_refused_and_allowed_only_when_trusted(project, override, key, reason):
    (line,) = findings(load_recipe("demo", [override]))
    assert f": {key}: unsafe: " in line and reason in line and "--allow-unsafe" in line
    assert findings(load_recipe("demo", [override], allow_unsafe=True)) == []


@pytest.mark.parametrize(
    "url, refused",
    [
        ("https://mirror.example.org/", False),
        ("http://127.0.0.1:8000/", False),
        ("http://localhost/", False),
        ("http://mirror.example.org/", True),
        ("ftp://127.0.0.1/", True),
        ("file:///etc/", True),
    ],
)
def test_story_mirrors_must_be_https_or_local(project, url, refused):
    recipe = load_recipe("kaltsit", [f"troupe.source.base_url={url}"])
    assert bool(findings(recipe)) == refused


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb.append(
            f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, "
            f"*{previous}, *{previous}, *{previous}, *{previous}, *{previous}]"
        )
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n")
    with pytest.raises(TroupeError, match="aliases expand to more than"):
        read_yaml(path)


def test_a_shell_injection_name_only_prints_an_error(tmp_path):
    victim = tmp_path / "pwned"
    env = {**os.environ, "TROUPE_ROOT": str(REPO)}
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), "check", f"CHARACTER=x; touch {victim}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and not victim.exists()
    assert done.stderr.startswith("error: ")  # troupe refused the name; the shell never ran it
