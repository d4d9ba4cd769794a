"""The README's commands are real: every documented make target exists and runs under `make -n`,
and every Makefile target is documented. (`make demo` runs for real in test_demo_e2e.py, and
`make test` is what CI runs.)"""

import re
import shlex

from helpers import REPO, run_make

from troupe.cli import MAKE_VERBS, argv_from_make, build_parser, with_boolean_values

README = (REPO / "README.md").read_text(encoding="utf-8")


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):.*## ", text, flags=re.M))


def bash_blocks() -> list[list[str]]:
    """The lines of each ```bash block, in order."""
    blocks, current = [], None
    for line in README.splitlines():
        if line.startswith("```"):
            if current is not None:
                blocks.append(current)
                current = None
            elif line.strip() == "```bash":
                current = []
        elif current is not None:
            current.append(line)
    return blocks


def readme_make_commands() -> list[str]:
    """`make …` commands of the README's bash blocks, comments stripped, `a && b` split."""
    commands = []
    for block in bash_blocks():
        for line in block:
            parts = line.split("#")[0].split("&&")
            commands += [part.strip() for part in parts if part.strip().startswith("make ")]
    return commands


def test_the_readme_starts_with_the_two_commands():
    assert [line.split("#")[0].strip() for line in bash_blocks()[0]] == ["make demo", "make test"]


def test_every_makefile_target_is_documented():
    for target in makefile_targets():
        assert f"`make {target}" in README, f"make {target} is not in the README"


def test_every_documented_command_is_a_valid_make_invocation():
    commands = readme_make_commands()
    assert len(commands) >= 8
    for command in commands:
        target = command.split()[1]
        assert target in makefile_targets(), command
        done = run_make("-n", *command.split()[1:])
        assert done.returncode == 0, f"{command}: {done.stderr}"


def test_every_documented_verb_reads_the_variables_it_is_given():
    """A variable the verb does not read would be ignored without a word (`make convert GPUS=2`)."""
    for command in readme_make_commands():
        verb, *words = shlex.split(command)[1:]
        if verb not in MAKE_VERBS:
            continue
        environ = dict(word.split("=", 1) for word in words)
        argument, variables = MAKE_VERBS[verb]
        assert set(environ) <= {argument, *variables}, command
        build_parser().parse_args(with_boolean_values(argv_from_make(verb, environ)))


def test_makefile_passes_variables_to_the_shell_only_quoted():
    """A CHARACTER such as 'x; rm -rf ~' must reach troupe as one argument, never as shell code: no
    recipe line names a user variable, and the verbs read theirs from the environment (test_make_front)."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe_lines = [line for line in text.splitlines() if line.startswith("\t")]
    for variable in ("CHARACTER", "ARGS", "FROM", "NAME", "GPUS", "NODES", "NODE_RANK", "MASTER", "FILE", "PORT"):
        assert not any(f"$({variable})" in line for line in recipe_lines), variable
    done = run_make("-n", "train", "CHARACTER=x; rm -rf ~")
    assert "troupe train --from-make" in done.stdout and "rm -rf ~" not in done.stdout
