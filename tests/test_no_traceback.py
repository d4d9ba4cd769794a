"""No traceback for any user input, for every verb. Every verb `troupe --help` lists is walked over
broken inputs: recipes (not UTF-8, not YAML, not a mapping, nested 100,000 deep, a 5000-digit
integer, a 300-character name, a wrong `troupe.source`), ARGS (an unclosed quote, unknown keys,
wrong types), files (all records rejected, a truncated array, paths that are missing or too long or
leave the project), ports, and steps run too early. Each must exit non-zero with a short error
whose line names the file, key or record, and no "Traceback".

Verbs that take a recipe are found from the parser, so a verb added later is walked too; any other
verb needs its own broken inputs in SPECIFIC. The walk runs in-process (cli.main) to stay fast; one
subprocess checks output piped into a reader that has left (`troupe list | head -1`)."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from helpers import cli

from troupe import cli as troupe_cli

pytestmark = pytest.mark.slow
LONG_NAME = "a" * 300

# Broken recipe inputs every verb that takes a recipe is given: (arguments after the verb, what the
# error must name).
RECIPE_INPUTS = [
    (["latin"], "latin.yaml:2: not UTF-8 text (byte 0xE9)"),
    (["not_yaml"], "not_yaml.yaml: not valid YAML"),
    (["scalar"], "scalar.yaml: a recipe is a YAML mapping"),
    (["deep"], "deep.yaml: not a recipe: nested too deeply"),
    (["long_integer"], "long_integer.yaml: not valid YAML"),
    ([LONG_NAME], "is not a recipe name"),
    ([f"/tmp/{LONG_NAME}.yaml"], "File name too long"),
    (["no_such_recipe"], "no recipe named 'no_such_recipe'"),
    (["demo", "--args", 'max_steps="2'], "ARGS: No closing quotation"),
    (["demo", "not-an-override"], "could not read: 'not-an-override'"),
    (["demo", "troupe.source.nickame=x"], "troupe.source.nickame: unknown key (did you mean 'nickname'?)"),
    (["demo", "troupe.source=arknights"], "troupe.source: Input should be a valid dictionary"),
    (["demo", "troupe.dataset.context_lines=many"], "troupe.dataset.context_lines"),
    (["demo", "troupe.character=[1, 2]"], "troupe.character"),
]

# Verbs without a recipe argument, and verb-specific inputs (options, files, steps run too early);
# paths are relative to the project root, the working directory of the walk.
SPECIFIC = {
    None: [([], "the following arguments are required: verb"), (["fly"], "invalid choice: 'fly'")],
    "list": [([], "latin.yaml:2: not UTF-8 text")],
    "new": [
        (["amiya", "--from", "../../../../../../../../etc/passwd"], "passwd: a recipe is a YAML mapping"),
        (["amiya", "--from", "latin"], "latin.yaml:2"),
        ([LONG_NAME, "--from", "demo"], "is not a valid recipe name"),
        (["Amiya-2", "--from", "demo"], "'Amiya-2' is not a valid recipe name"),
        (["demo", "--from", "demo"], "demo.yaml exists; pass FORCE=1"),
    ],
    "import": [
        (["missing.recipe.yaml"], "missing.recipe.yaml: no such file"),
        (["recipes/latin.yaml"], "latin.yaml:2"),
        (["recipes/demo.yaml"], "not a troupe shared recipe"),
    ],
    "compare": [(["no_such_run"], "no recipe named 'no_such_run'"), (["bad/metrics.json"], "not a metrics.json")],
    "tiny-model": [
        (["--recipe", "latin"], "latin.yaml:2"),
        (["--out", "../outside"], "--out '../outside' contains '..'"),
        (["--out", "outputs/demo/merged"], "is not a folder under models/"),
        (["--arch", "gpt"], "invalid choice: 'gpt'"),
    ],
    "demo": [
        (["--args", "max_steps='2"], "ARGS: No closing quotation"),
        (["--recipe", "kaltsit"], "no demo 'kaltsit'; the demos are: demo, demo_real"),
    ],
    "base": [
        ([], "the following arguments are required: name"),
        (["../recipes/demo"], "no base model '../recipes/demo'; known: none"),
    ],
    "convert": [
        (["elderly_companion", "troupe.source.files=[bad/all_rejected.jsonl]"], "all_rejected.jsonl#1"),
        (["elderly_companion", "troupe.source.files=[bad/truncated.json]"], "truncated.json:4:"),
        (["elderly_companion", "troupe.source.files=[bad/none.jsonl]"], "'bad/none.jsonl' matches no file"),
    ],
    "serve": [
        (["demo", "--port", "70000"], "'70000' is not a TCP port"),
        (["demo"], "no trained adapter in outputs/demo/adapter"),
    ],
    "chat": [(["demo"], "no trained adapter in outputs/demo/adapter")],
    "evaluate": [(["demo"], "no trained adapter in outputs/demo/adapter")],
    "merge": [(["demo"], "no trained adapter in outputs/demo/adapter")],
    "export": [(["demo"], "no trained adapter in outputs/demo/adapter")],
    "preprocess": [(["tang_poetry"], "datasets/tang_poetry/manifest.json does not exist yet")],
    "train": [(["demo", "--parallel", "zero9"], "invalid choice: 'zero9'")],
    "speakers": [(["demo", "--top", "x"], "invalid int value: 'x'")],
    "discover": [(["demo"], "cannot discover stories")],
    "verify": [(["demo"], "no lock for demo")],
}


def recipe_verbs() -> tuple[list[str], list[str]]:
    """(verbs that take a recipe, all verbs), from the parser `troupe --help` prints."""
    (action,) = [a for a in troupe_cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    takes_recipe = [
        name
        for name, sub in action.choices.items()
        if any(a.dest == "recipe" and not a.option_strings for a in sub._actions)
    ]
    return takes_recipe, list(action.choices)


@pytest.fixture(scope="module")
def project(demo_copy):
    """The recipes with broken ones beside them, broken data files, and the demo's dataset and tiny
    base model (so that evaluate, merge, serve and chat get as far as "train first")."""
    root = demo_copy
    recipes, bad = root / "recipes", root / "bad"
    (recipes / "latin.yaml").write_bytes("# A broken recipe\n# caf\u00e9\ntroupe: {}\n".encode("latin-1"))
    (recipes / "not_yaml.yaml").write_text("troupe: [unclosed\n", encoding="utf-8")
    (recipes / "scalar.yaml").write_text("just a sentence\n", encoding="utf-8")
    (recipes / "deep.yaml").write_text("[" * 100_000, encoding="utf-8")
    (recipes / "long_integer.yaml").write_text("seed: " + "9" * 5000 + "\n", encoding="utf-8")
    bad.mkdir()
    chat = {"messages": [{"role": "user", "content": "hello?"}]}  # no reply: every record is rejected
    (bad / "all_rejected.jsonl").write_text("\n".join(json.dumps(chat) for _ in range(5)), encoding="utf-8")
    (bad / "truncated.json").write_text('[\n{"messages": []},\n{"messages": [\n{"role": "user', encoding="utf-8")
    (bad / "metrics.json").write_text("{not json", encoding="utf-8")
    return root


def run(argv: list[str]) -> tuple[int, str, str]:
    """The CLI in-process: (exit code, stdout, stderr); an exception escaping main is reported as the
    traceback a user would see (so the walk lists every failure)."""
    try:
        done = cli(*argv, check=False)
    except Exception as exc:  # the walk reports it as the failure it is
        return 1, "", f"Traceback (most recent call last): … {type(exc).__name__}: {exc}"
    return done.returncode, done.stdout, done.stderr


def test_every_verb_refuses_broken_input_in_one_line_without_a_traceback(project, monkeypatch):
    monkeypatch.setenv("TROUPE_ROOT", str(project))
    monkeypatch.chdir(project)
    takes_recipe, verbs = recipe_verbs()
    assert set(verbs) - set(takes_recipe) <= set(SPECIFIC), "a verb without a recipe needs its broken inputs"
    cases = [([verb, *args], says) for verb in takes_recipe for args, says in RECIPE_INPUTS]
    cases += [([verb, *args] if verb else args, says) for verb, inputs in SPECIFIC.items() for args, says in inputs]
    failures = []
    for argv, says in cases:
        code, out, err = run(argv)
        lines = err.strip().splitlines()
        if code == 0 or "Traceback" in out + err or not any(says in line for line in lines) or len(lines) > 8:
            failures.append(f"troupe {' '.join(argv)[:120]}: exit {code}, expected {says!r}, got:\n{err[-1500:]}")
    assert not failures, f"{len(failures)} of {len(cases)} broken inputs:\n" + "\n".join(failures)


def test_output_into_a_reader_that_left_ends_quietly(project):
    """`troupe list | head -1`: the pipe is closed before troupe writes."""
    reader, writer = os.pipe()
    os.close(reader)
    env = {**os.environ, "TROUPE_ROOT": str(project)}
    done = subprocess.run([sys.executable, "-m", "troupe", "list"], stdout=writer, stderr=subprocess.PIPE, env=env)
    os.close(writer)
    assert done.returncode == 141 and b"Traceback" not in done.stderr and b"BrokenPipe" not in done.stderr
