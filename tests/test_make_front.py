"""The Makefile's one rule for the verbs: `make <verb>` runs `troupe <verb> --from-make`, and
argv_from_make turns the exported variables into that verb's own options, each value one word.

    .venv/bin/python -m pytest -n 0 tests/test_make_front.py
"""

import re

import pytest
from helpers import REPO, run_make

from troupe.cli import MAKE_VERBS, argv_from_make, build_parser, main, with_boolean_values

HOSTILE = "x; rm -rf ~ $(shell touch pwned) `touch pwned` $$HOME"


def parsed(verb: str, environ: dict):
    return build_parser().parse_args(with_boolean_values(argv_from_make(verb, environ)))


def makefile_verbs() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    verbs = re.search(r"^VERBS := (.*?[^\\])$", text, flags=re.M | re.S).group(1)
    return set(verbs.replace("\\\n", " ").split())


def test_every_verb_of_the_makefile_has_its_variables_and_no_other():
    assert makefile_verbs() == set(MAKE_VERBS)


@pytest.mark.parametrize("verb", sorted(MAKE_VERBS))
def test_every_verb_accepts_every_variable_it_is_given(verb):
    environ = {
        **dict.fromkeys(("CHARACTER", "FROM", "NAME", "FILE", "ARGS"), "demo"),
        **dict.fromkeys(("ALLOW_UNSAFE", "FORCE", "DRY_RUN", "RESUME", "DEBUG"), "1"),
        **{"GPUS": "2", "PARALLEL": "zero2", "NODES": "2", "NODE_RANK": "1", "MASTER": "h:1", "TOP": "5", "PORT": "9"},
    }
    args = parsed(verb, environ)  # argparse exits on an option the verb does not have
    assert args.verb == verb


def test_train_gets_every_launch_variable_as_one_value():
    args = parsed(
        "train",
        {"CHARACTER": "demo", "ARGS": "max_steps=2 lr=1", "GPUS": "4", "PARALLEL": "fsdp2", "NODES": "2"}
        | {"NODE_RANK": "1", "MASTER": "10.0.0.1:29500", "DRY_RUN": "yes", "RESUME": "0", "ALLOW_UNSAFE": ""},
    )
    assert (args.recipe, args.args, args.gpus, args.parallel, args.nodes) == (
        "demo",
        "max_steps=2 lr=1",
        "4",
        "fsdp2",
        "2",
    )
    assert (args.node_rank, args.master, args.dry_run, args.resume, args.allow_unsafe) == (
        "1",
        "10.0.0.1:29500",
        True,
        False,
        False,
    )


def test_unset_variables_take_the_makefiles_defaults_and_optional_ones_are_left_out():
    assert argv_from_make("train", {"CHARACTER": "demo"}) == [
        "train",
        *("--args=", "--allow-unsafe=", "--gpus=1", "--nodes=1", "--dry-run=", "--resume="),
        *("--", "demo"),
    ]
    assert parsed("speakers", {}).top == 30 and parsed("serve", {}).port == 8000
    assert parsed("new", {"CHARACTER": "amiya", "FROM": "kaltsit"}).name is None
    assert argv_from_make("list", {"CHARACTER": "demo", "GPUS": "2"}) == ["list"]


def test_a_verb_gets_only_the_variables_it_reads():
    words = argv_from_make("convert", {"CHARACTER": "demo", "GPUS": "2", "PORT": "1", "FORCE": "1", "FILE": "f"})
    assert words == ["convert", "--args=", "--allow-unsafe=", "--", "demo"]
    assert argv_from_make("import", {"FILE": "k.recipe.yaml", "CHARACTER": "x"})[-2:] == ["--", "k.recipe.yaml"]


@pytest.mark.parametrize("value", [HOSTILE, "--force", "--force=yes", "--allow-unsafe", "--allow-unsafe=1", "-x", ""])
def test_a_value_is_one_word_never_an_option(value):
    args = parsed("check", {"CHARACTER": value, "ARGS": value})
    assert (args.recipe, args.args, args.allow_unsafe) == (value, value, False)


def test_an_unknown_verb_is_refused_by_argparse(capsys):
    assert argv_from_make("demo", {}) == ["demo", "--from-make"]
    with pytest.raises(SystemExit):
        main(["no-such-verb", "--from-make"])


def test_main_reads_the_environment_only_with_from_make(monkeypatch, capsys):
    monkeypatch.setenv("CHARACTER", HOSTILE)
    assert main(["check", "--from-make"]) == 1
    assert capsys.readouterr().err.startswith("error: ")  # the name refused, never run


@pytest.mark.parametrize("verb", sorted(MAKE_VERBS))
def test_make_puts_no_variable_into_the_command_line(verb):
    done = run_make("-n", verb, f"CHARACTER={HOSTILE}", f"ARGS={HOSTILE}", f"FILE={HOSTILE}", f"FROM={HOSTILE}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f".venv/bin/troupe {verb} --from-make"
    assert "rm -rf ~" not in done.stdout and "pwned" not in done.stdout


def test_make_help_lists_every_target_with_its_line():
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    described = dict(re.findall(r"^([a-z][a-z-]*):.*?## (.*)$", text, flags=re.M))
    assert makefile_verbs() | {"help", "setup", "demo", "test", "test-fast"} <= set(described)
    shown = run_make("-s", "help").stdout
    for target, line in described.items():
        assert f"make {target:<11} {line}" in shown, target
