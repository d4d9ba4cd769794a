"""Helpers shared by the tests (plain functions; fixtures live in conftest.py).

cli("convert", "demo", root=root)            troupe's CLI in-process: CompletedProcess-like, output captured
cli_process("chat", "demo", root=root, input="/exit\n")   the same in a subprocess, where one is needed
run_make("-n", "train", "CHARACTER=demo")     make in the repository, as a user runs it from a shell
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEBUG_TOKEN_RE = re.compile(r"\((-?\d+), (\d+)\)")


def cli(*args: str, root: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`troupe.cli.main(args)` in this process, against `root` (else the TROUPE_ROOT already set): the
    exit code (argparse's included), stdout and stderr. Output is captured at the file descriptors, so
    what an Axolotl subprocess of the verb prints is captured too. A subprocess would import troupe and
    Axolotl again (10 to 30 s on 2 shared cores); use `cli_process` only for what needs one (a signal,
    stdin, sys.path of the project, a pipe)."""
    with _env(TROUPE_ROOT=str(root) if root else None), _captured() as output:
        try:
            from troupe.cli import main

            code = main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    done = subprocess.CompletedProcess(["troupe", *map(str, args)], code, output["stdout"], output["stderr"])
    if check and done.returncode:
        raise AssertionError(f"troupe {' '.join(done.args[1:])} exited {code}:\n{done.stdout}\n{done.stderr}")
    return done


def cli_process(*args: str, root: Path, check: bool = True, **run) -> subprocess.CompletedProcess:
    """`python -m troupe …` in a subprocess against a project root; output captured as text (`run`:
    more subprocess.run arguments, e.g. cwd, input, timeout)."""
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    command = [sys.executable, "-m", "troupe", *map(str, args)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, **run)
    if check and done.returncode:
        raise AssertionError(
            f"troupe {' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


MAKE_OWN_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def run_make(*words: str, root: Path | None = None, **run) -> subprocess.CompletedProcess:
    """`make -C REPO …` as a user runs it from a shell, never as a sub-make of the `make test` that runs
    the suite: make's own variables are left out of its environment (a sub-make would print "Entering
    directory" lines and inherit the outer flags). `root`: TROUPE_ROOT; `run`: more subprocess.run
    arguments (input, timeout)."""
    env = {name: value for name, value in os.environ.items() if name not in MAKE_OWN_VARIABLES}
    if root is not None:
        env["TROUPE_ROOT"] = str(root)
    command = ["make", "--no-print-directory", "-C", str(REPO), *map(str, words)]
    return subprocess.run(command, env=env, capture_output=True, text=True, **run)


def as_a_terminal_job() -> None:
    """preexec_fn for a process a test sends Ctrl-C to: SIGINT at its default action and unblocked, as
    a terminal's foreground job has it. An ignored signal survives exec, and this process may have run
    in-process steps (helpers.cli) that left SIGINT ignored: Python would then never raise
    KeyboardInterrupt in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _env(**values: str | None):
    """Environment variables set for the block (None: left as they are), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: value for name, value in values.items() if value is not None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _captured():
    """stdout and stderr of this process and of its children, at fds 1 and 2, into a dict."""
    output: dict[str, str] = {}
    streams = sys.stdout, sys.stderr
    for stream in streams:
        stream.flush()
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    saved = [os.dup(1), os.dup(2)]
    try:
        for fd, file in zip((1, 2), files, strict=True):
            os.dup2(file.fileno(), fd)
        sys.stdout, sys.stderr = (open(fd, "w", encoding="utf-8", closefd=False, buffering=1) for fd in (1, 2))
        yield output
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.close()  # flushes; closefd=False leaves the descriptor
        sys.stdout, sys.stderr = streams
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        for name, file in zip(("stdout", "stderr"), files, strict=True):
            file.seek(0)
            output[name] = file.read().decode("utf-8", errors="replace")
            file.close()


def trained_spans(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """The runs of consecutive trained positions (label != -100), as token ids."""
    spans, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != -100:
            assert label == token, "a trained label must be the token itself"
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    return spans + ([current] if current else [])


def prepared_rows(prepared_dir: Path) -> list[dict]:
    """Every tokenised row Axolotl wrote under a dataset_prepared_path."""
    from datasets import load_from_disk

    rows = []
    for folder in sorted(p for p in prepared_dir.iterdir() if p.is_dir()):
        rows += list(load_from_disk(str(folder)))
    return rows


def debug_label_pairs(output: str) -> list[tuple[int, int]]:
    """(label, token id) pairs printed by `axolotl preprocess --debug`."""
    return [(int(label), int(token)) for label, token in DEBUG_TOKEN_RE.findall(output)]


def save_as_trained_adapter(recipe, peft_model, tokenizer) -> None:
    """Put a PEFT model where `troupe train` promotes one (outputs/<slug>/adapter/), with the records
    consumers check: the training config and troupe.json (as a finished run writes them)."""
    from troupe import dataset, provenance
    from troupe.render import resolve, write_resolved

    folder = recipe.layout.adapter_dir
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_resolved(recipe, resolve(recipe, cuda=False), folder / "train.resolved.yaml", "train")
    manifest = dataset.read_manifest(recipe) or {"files": {}}
    record = {
        "adapter_sha256": provenance.weights_sha256(folder),
        "dataset_splits": {name: entry["sha256"] for name, entry in manifest["files"].items()},
    }
    provenance.write_record(folder, provenance.record("train", record))
