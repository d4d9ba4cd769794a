"""troupe new / make new: copy a recipe for a new character, like torchtune's `tune cp`."""

import pytest

from troupe.cli import main
from troupe.recipe import load_recipe


def test_copy_rewrites_paths_and_name_and_prints_the_next_command(project, capsys):
    assert main(["new", "amiya", "--from", "kaltsit", "--name", "阿米娅"]) == 0
    assert "make train CHARACTER=amiya" in capsys.readouterr().out
    recipe = load_recipe("amiya")
    assert recipe.spec.character.name == "阿米娅" and recipe.spec.character.aliases == []
    assert "阿米娅" in recipe.spec.prompt.system and "凯尔希" not in recipe.spec.prompt.system
    assert recipe.axolotl["output_dir"] == "outputs/amiya"
    assert recipe.axolotl["datasets"][0]["path"] == "datasets/amiya/train.jsonl"
    assert recipe.axolotl["test_datasets"][0]["path"] == "datasets/amiya/validation.jsonl"
    assert recipe.troupe["source"]["urls"] == "recipes/amiya.urls.txt"
    assert (project / "recipes" / "amiya.urls.txt").read_text() == (
        project / "recipes" / "kaltsit.urls.txt"
    ).read_text()
    assert (
        (project / "recipes" / "amiya.yaml")
        .read_text(encoding="utf-8")
        .startswith("# Copied from recipes/kaltsit.yaml")
    )


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
