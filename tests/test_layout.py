"""troupe.layout: one answer to "is base_model local?" for every verb."""

import pytest

from troupe import policy, preflight
from troupe.errors import CheckFailed
from troupe.layout import Place, base_model_location, model_location
from troupe.plan import Needs, make_plan
from troupe.recipe import load_recipe
from troupe.render import run_env


@pytest.mark.parametrize(
    ("value", "place"),
    [
        ("models/not_built_yet", Place.MISSING),
        ("./weights", Place.MISSING),
        ("outputs/demo/merged", Place.MISSING),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", Place.HUB),
        ("gpt2", Place.HUB),
    ],
)
def test_a_path_is_local_whether_built_or_not(value, place, tmp_path):
    assert base_model_location(value, tmp_path).place is place
    (tmp_path / value).mkdir(parents=True, exist_ok=True)
    assert base_model_location(value, tmp_path).place is Place.PRESENT
    assert model_location(value, tmp_path) == str(tmp_path / value)


def test_an_absolute_path_is_local(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "model")
    assert base_model_location(absolute, tmp_path / "project").place is Place.MISSING


def test_not_a_name_is_no_location(tmp_path):
    assert base_model_location(None, tmp_path) is None and base_model_location("", tmp_path) is None


def test_a_base_model_not_built_yet_is_a_missing_folder_never_a_hub_id(project):
    recipe_file = project / "recipes" / "demo.yaml"
    text = recipe_file.read_text(encoding="utf-8").replace(
        "base_model: models/tiny", "base_model: models/not_built_yet"
    )
    recipe_file.write_text(text, encoding="utf-8")
    recipe = load_recipe("demo", root=project)
    assert recipe.axolotl["base_model"] == "models/not_built_yet"
    assert policy.model_problem("models/not_built_yet", project) is None
    with pytest.raises(CheckFailed) as failed:
        make_plan(recipe, Needs.INPUTS)
    problems = [p for p in failed.value.problems if p.key == "base_model"]
    assert [p.problem for p in problems] == ["models/not_built_yet is not a model folder"]
    assert run_env(recipe.axolotl, project)["HF_HUB_OFFLINE"] == "1"  # Axolotl never asks the hub for it
    assert ("model", "models/not_built_yet") in preflight.training_inputs(recipe.axolotl, project)
    assert model_location("models/not_built_yet", project) == str(project / "models" / "not_built_yet")


def test_the_paths_troupe_renders_are_the_ones_check_expects(project):
    """render fills each Axolotl dataset list with its split's file; validate refuses any other."""
    from troupe.render import with_layout_paths
    from troupe.validate import rendered_paths

    recipe = load_recipe("demo", root=project)
    config = dict(recipe.axolotl)
    with_layout_paths(recipe, config)
    rendered = {"output_dir": config["output_dir"]} | {
        f"{name}[0].path": config[name][0]["path"] for name in ("datasets", "test_datasets")
    }
    assert rendered == rendered_paths(recipe)
    assert rendered["datasets[0].path"] == "datasets/demo/train.jsonl"
