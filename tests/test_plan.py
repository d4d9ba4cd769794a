"""One plan per verb: a verb loads its recipe once, checks it once and resolves it once (troupe.plan).
Counted on the real steps, with only Axolotl's own run replaced."""

from collections import Counter

import pytest

from troupe import pipeline, validate
from troupe import recipe as recipe_module
from troupe.cli import main
from troupe.errors import CheckFailed, Kind
from troupe.plan import Needs, make_plan
from troupe.recipe import load_recipe


@pytest.fixture
def counted(project, monkeypatch):
    """Calls of the data half of the check, of Axolotl's validate_config, of reading a recipe file,
    and the Axolotl commands a verb would run (not run: a stand-in records them)."""
    import axolotl.utils.config as axolotl_config

    calls = Counter()

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(validate, "data_problems", counting("data half", validate.data_problems))
    monkeypatch.setattr(axolotl_config, "validate_config", counting("validate_config", axolotl_config.validate_config))
    monkeypatch.setattr(recipe_module, "read_yaml", counting("recipe read", recipe_module.read_yaml))
    monkeypatch.setattr(pipeline, "run_axolotl", lambda command, *args, **kwargs: calls.update([f"axolotl {command}"]))
    (project / "models" / "tiny").mkdir(parents=True)  # a base model folder (Axolotl is not run)
    return calls


def test_train_checks_once_and_validates_with_axolotl_once(project, counted):
    """The data half and Axolotl's validate_config run once per `train` (they ran 3× and 2×), though
    train converts the dataset and tokenises on the way."""
    assert main(["train", "demo"]) == 1  # the stand-in saved no weights: nothing is promoted
    assert (project / "datasets" / "demo" / "manifest.json").is_file()  # it converted on the way
    assert counted["data half"] == 1
    assert counted["validate_config"] == 1
    assert counted["recipe read"] == 1
    assert counted["axolotl train"] == 1


def test_check_checks_once(project, counted):
    assert main(["check", "demo"]) == 0
    assert (counted["data half"], counted["validate_config"], counted["recipe read"]) == (1, 1, 1)


def test_a_train_plan_has_the_cache_path_of_the_dataset_it_built(project, counted):
    plan = make_plan(load_recipe("demo"), Needs.TRAIN)
    assert "dataset_prepared_path" not in plan.config  # no dataset yet: train builds it
    pipeline.convert(plan)
    assert plan.with_dataset().config["dataset_prepared_path"].startswith("datasets/.prepared/demo/")


@pytest.mark.parametrize(
    ("needs", "missing_is_an_error"),
    [(Needs.CONFIG, False), (Needs.DRY_RUN, False), (Needs.TRAIN, False), (Needs.INPUTS, True), (Needs.ADAPTER, True)],
)
def test_what_a_verb_needs_decides_whether_a_missing_dataset_is_an_error(project, counted, needs, missing_is_an_error):
    recipe = load_recipe("demo")
    if not missing_is_an_error:
        plan = make_plan(recipe, needs)
        assert any("datasets/demo/manifest.json" in note for note in plan.notes) == (needs is not Needs.TRAIN)
        return
    with pytest.raises(CheckFailed) as failed:
        make_plan(recipe, needs)
    kinds = {p.key: p.kind for p in failed.value.problems}
    assert kinds["dataset"] is Kind.MISSING_INPUT
    assert ("adapter" in kinds) == (needs is Needs.ADAPTER)


def test_a_refused_recipe_is_refused_by_kind_and_never_validated_by_axolotl(project, counted):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\ntrust_remote_code: true\n", encoding="utf-8")
    with pytest.raises(CheckFailed) as failed:
        make_plan(load_recipe("demo"), Needs.CONFIG)
    assert [(p.key, p.kind) for p in failed.value.problems] == [("trust_remote_code", Kind.UNSAFE)]
    assert counted["validate_config"] == 0
