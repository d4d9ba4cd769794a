"""Values a careless or hostile recipe, ARGS or input file holds (issue 20): every number troupe
reads has a ceiling and is finite, W&B is refused like MLflow, a value of the wrong type or a path
with a NUL byte is a one-line problem, an override that refers to itself is refused, duplicate JSON
keys and CSV columns never drop data silently, and `troupe new` writes a recipe that reads back."""

import re
import shlex
import typing

import annotated_types
import pytest
import yaml
from pydantic import BaseModel

from troupe import converters
from troupe.cli import main
from troupe.converters import ReadContext, qa_pairs
from troupe.converters._files import parse_json, record_problem
from troupe.errors import TroupeError
from troupe.recipe import load_recipe
from troupe.schema import TroupeSpec
from troupe.validate import data_problems

# ---- item 9: every limit has a ceiling -------------------------------------------------------------


def numeric_fields(model: type[BaseModel], prefix: str):
    """(key, field) of every int or float field of `model` and the models inside it."""
    for name, info in model.model_fields.items():
        kinds = typing.get_args(info.annotation) or (info.annotation,)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from numeric_fields(info.annotation, f"{prefix}.{name}")
        elif {int, float} & set(kinds):
            yield f"{prefix}.{name}", info


def test_every_number_of_the_troupe_block_and_every_converter_has_a_ceiling():
    models = [(TroupeSpec, "troupe")] + [(converters.load(n).Options, "troupe.source") for n in converters.available()]
    fields = [field for model, prefix in models for field in numeric_fields(model, prefix)]
    assert len(fields) > 20
    unbounded = [key for key, info in fields if not any(isinstance(m, annotated_types.Le) for m in info.metadata)]
    assert unbounded == []


def problems_of(recipe) -> dict[str, str]:
    return {p.key: p.problem for p in data_problems(recipe)}


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("troupe.source.timeout=.inf", "finite number"),
        ("troupe.source.timeout=1e309", "finite number"),
        ("troupe.source.timeout=.nan", "finite number"),
        ("troupe.source.timeout=601", "less than or equal to 600"),
        ("troupe.source.deadline=1e9", "less than or equal to 3600"),
        ("troupe.source.max_bytes=2000000000", "less than or equal to 100000000"),
        ("troupe.evaluate.judge_repeats=100000", "less than or equal to 10"),
        ("troupe.evaluate.seed=1000000000000000000000000000000", "less than or equal to 4294967295"),
        ("troupe.evaluate.temperature=.inf", "finite number"),
        ("troupe.dataset.split.seed=-1", "greater than or equal to 0"),
    ],
)
def test_a_limit_past_its_ceiling_is_refused_even_with_allow_unsafe(project, override, says):
    key = override.partition("=")[0]
    for allow_unsafe in (False, True):
        found = problems_of(load_recipe("demo", [override], allow_unsafe=allow_unsafe))
        assert says in found.get(key, ""), found


def test_the_check_names_the_key_and_its_ceiling_in_one_line(project, capsys):
    assert main(["check", "demo", "troupe.evaluate.judge_repeats=100000"]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "troupe.evaluate.judge_repeats" in line]  # one line, the key
    assert "recipes/demo.yaml" in line and "10" in line  # the file and the ceiling
    assert "Traceback" not in err


# ---- item 11: W&B is refused like MLflow and Comet -------------------------------------------------


@pytest.mark.parametrize("override", ["use_wandb=true", "wandb_project=my-runs"])
def test_wandb_logging_is_refused_without_allow_unsafe(project, override):
    key = override.partition("=")[0]
    assert "unsafe: publishes" in problems_of(load_recipe("demo", [override])).get(key, "")
    assert key not in problems_of(load_recipe("demo", [override], allow_unsafe=True))


@pytest.mark.parametrize("override", ["wandb_mode=disabled", "wandb_mode=offline", "use_wandb=false", "wandb_project="])
def test_wandb_settings_that_log_nothing_pass(project, override):
    assert override.partition("=")[0] not in problems_of(load_recipe("demo", [override]))


def test_no_shipped_recipe_turns_on_wandb():
    from helpers import REPO

    for path in sorted((REPO / "recipes").glob("*.yaml")):
        assert "wandb" not in path.read_text(encoding="utf-8"), path.name


# ---- item 14: values of the wrong type, NUL bytes, self-referencing overrides ----------------------


@pytest.mark.parametrize(
    ("override", "key", "says"),
    [
        ("attn_implementation=[sdpa]", "attn_implementation", "is not one of"),
        ("attn_implementation={sdpa: 1}", "attn_implementation", "is not one of"),
        ("plugins={axolotl.integrations.liger.LigerPlugin: 1}", "plugins", "a list of plugin class names"),
        ("plugins=[{a: 1}]", "plugins", "a list of plugin class names"),
        ("plugins=5", "plugins", "a list of plugin class names"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_problem_not_a_crash(project, capsys, override, key, says):
    assert says in problems_of(load_recipe("demo", [override])).get(key, "")
    assert main(["check", "demo", override]) == 1
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "override",
    ["datasets=5", "test_datasets=5", "datasets.0.message_property_mappings=[1]", "plugins=5", "plugins=[a]"],
)
def test_a_value_of_the_wrong_type_is_a_problem_with_allow_unsafe_too(project, capsys, override):
    for unsafe in ([], ["--allow-unsafe"]):
        assert main(["check", "demo", *unsafe, override]) == 1
        err = capsys.readouterr().err
        assert "problem(s)" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "override",
    [
        'base_model="models/ti\\0ny"',
        'base_model_config="models/ti\\0ny"',
        'tokenizer_config="models/ti\\0ny"',
        'chat_template_jinja="recipes/demo\\0.jinja"',
        'datasets.0.chat_template_jinja="recipes/demo\\0.jinja"',
        'troupe.source.files=["recipes/demo/\\0*.json"]',
    ],
)
def test_a_nul_byte_in_a_path_is_a_problem_not_a_crash(project, override):
    key = override.partition("=")[0].replace(".0.", "[0].")
    assert "NUL" in problems_of(load_recipe("demo", [override])).get(key, "")


@pytest.mark.parametrize("args", ["x=&a [*a]", "troupe.character.name=&a {n: *a}", "seed=[&a [1], *a]"])
def test_an_override_with_yaml_aliases_is_refused_in_one_line(project, capsys, args):
    with pytest.raises(TroupeError, match="aliases"):
        load_recipe("demo", [args])
    for verb in (["check"], ["train", "--dry-run"], ["share"]):
        assert main([*verb, "demo", "--args", shlex.quote(args)]) == 1  # ARGS="x='&a [*a]'"
        err = capsys.readouterr().err
        assert "aliases" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_recipe_file_that_refers_to_itself_is_refused(project):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "loop: &loop [*loop]\n", encoding="utf-8")
    with pytest.raises(TroupeError, match="aliases expand to more than"):
        load_recipe("demo")


# ---- item 18: duplicate JSON keys and CSV columns --------------------------------------------------


def test_a_json_key_given_twice_makes_its_record_a_reject():
    assert record_problem(parse_json('{"question": "a?", "answer": "b", "answer": "c"}')) == (
        "record: key 'answer' is given twice (one of its values would be lost)"
    )
    nested = parse_json('{"messages": [{"role": "user", "content": "a", "content": "b"}]}')
    assert record_problem(nested) == "messages.0: key 'content' is given twice (one of its values would be lost)"
    assert record_problem(parse_json('{"a": {"b": 1}, "c": {"b": 2}}')) is None


def context(root) -> ReadContext:
    return ReadContext(root=root, cache_dir=root / "cache")


def test_duplicate_keys_in_json_lines_are_counted_rejects(tmp_path):
    (tmp_path / "qa.jsonl").write_text(
        '{"question": "Why?", "answer": "Because."}\n{"question": "How?", "answer": "So.", "answer": "Not so."}\n',
        encoding="utf-8",
    )
    result = qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=["qa.jsonl"]), context(tmp_path))
    assert len(result.samples) == 1
    assert [(r.index, r.reason) for r in result.rejects] == [
        (2, "record: key 'answer' is given twice (one of its values would be lost)")
    ]


def test_a_csv_header_with_a_column_twice_is_refused(tmp_path):
    (tmp_path / "qa.csv").write_text("question,answer,answer\nWhy?,Because.,Not so.\n", encoding="utf-8")
    with pytest.raises(TroupeError, match=re.escape("qa.csv:1: the header names 'answer' twice")):
        qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=["qa.csv"]), context(tmp_path))


# ---- item 19: `troupe new --name` writes a recipe that reads back ----------------------------------

NAMES = ["a: b", "# not a comment", "- item", "{x}", '"quoted"', "it's", "&anchor", "*alias", "!tag", "|", " x "]


@pytest.mark.parametrize("name", NAMES)
def test_new_writes_the_name_exactly_and_nothing_more(project, name):
    assert main(["new", "copy", "--from", "demo", "--name", name]) == 0
    text = (project / "recipes" / "copy.yaml").read_text(encoding="utf-8")
    written, original = yaml.safe_load(text), yaml.safe_load((project / "recipes" / "demo.yaml").read_text())
    expected = original["troupe"]
    expected["character"]["name"] = name
    for field in ("system", "user_template"):
        expected["prompt"][field] = expected["prompt"][field].replace("闻钟", name)
    assert written == {**original, "troupe": expected}
    assert data_problems(load_recipe("copy")) == []


@pytest.mark.parametrize("name", ["x\ntrust_remote_code: true", "x\rtrust_remote_code: true", "x\u2028y", "x\x00"])
def test_new_refuses_a_name_that_is_not_one_line_of_text(project, capsys, name):
    assert main(["new", "copy", "--from", "demo", "--name", name]) == 1
    assert "--name" in capsys.readouterr().err  # the option refused
    assert not (project / "recipes" / "copy.yaml").exists()
    assert not (project / "recipes" / "copy.yaml").exists()
