"""troupe new / make new: copy a recipe for a new character, like torchtune's `tune cp`."""

import pytest

from troupe.cli import main
from troupe.recipe import load_recipe


def test_copy_moves_commands_and_name_and_prints_the_next_command(project, capsys):
    assert main(["new", "amiya", "--from", "kaltsit", "--name", "阿米娅"]) == 0
    assert "make train CHARACTER=amiya" in capsys.readouterr().out
    recipe, original = load_recipe("amiya"), load_recipe("kaltsit")
    assert recipe.spec.character.name == "阿米娅" and recipe.spec.character.aliases == []
    assert recipe.spec.prompt.system == original.spec.prompt.system.replace("凯尔希", "阿米娅")
    assert recipe.spec.prompt.user_template == original.spec.prompt.user_template.replace("凯尔希", "阿米娅")
    assert recipe.axolotl == original.axolotl  # nothing else changes: paths come from the slug
    assert recipe.layout.split("train").as_posix().endswith("datasets/amiya/train.jsonl")
    assert (project / "recipes" / "amiya.urls.txt").read_text() == (
        project / "recipes" / "kaltsit.urls.txt"
    ).read_text()
    text = (project / "recipes" / "amiya.yaml").read_text(encoding="utf-8")
    assert text.startswith("# 阿米娅 (amiya): copied from recipes/kaltsit.yaml")
    header = text.split("\ntroupe:")[0]
    assert "CHARACTER=amiya" in header and "CHARACTER=kaltsit" not in header
    assert "Kal'tsit (凯尔希" in header  # the notes stay the original's words, not a mangled mixture


def test_the_name_changes_only_in_values_never_in_keys(project):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "special_tokens: {pad_token: 闻钟}\n", encoding="utf-8")
    assert main(["new", "nurse", "--from", "demo", "--name", "护士"]) == 0
    recipe = load_recipe("nurse")
    assert recipe.axolotl["special_tokens"] == {"pad_token": "闻钟"}  # not the character's name field
    assert recipe.spec.character.name == "护士"
    assert recipe.troupe["source"]["files"] == ["recipes/demo/*.json"]  # values stay: the copy reads the same story


def test_refuses_to_overwrite_without_force(project, capsys):
    assert main(["new", "amiya", "--from", "demo"]) == 0
    assert main(["new", "amiya", "--from", "demo"]) == 1
    assert "FORCE=1" in capsys.readouterr().err
    assert main(["new", "amiya", "--from", "kaltsit", "--force"]) == 0
    assert load_recipe("amiya").spec.character.name == "凯尔希"  # no NAME: the name is kept


@pytest.mark.parametrize("slug", ["Amiya", "amiya; rm -rf ~", "../x"])
def test_bad_slugs_are_refused(project, slug):
    assert main(["new", slug, "--from", "demo"]) == 1
    assert not list((project / "recipes").glob("*amiya*"))
