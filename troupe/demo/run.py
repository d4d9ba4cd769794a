"""`make demo` and `make demo-real`: the main job end to end on this CPU, offline, with a summary.

    troupe demo             # recipes/demo.yaml: 闻钟 on a tiny model trained here (the plumbing, in 2 minutes)
    troupe demo demo_real   # recipes/demo_real.yaml: Captain Marrowby on SmolLM2-135M-Instruct (a real model)

Each runs convert → base model → train → merge → evaluate (base, adapter and merged between the
controls) → a reply through the official `openai` client from `troupe serve`'s app, then prints
the summary with each target it was built for, met or NOT met. The base model is the recipe's:
models/tiny is built and trained on the story here (`troupe tiny-model`); a packaged real model is
converted from its registry package (`troupe base`, troupe/bases.py).
"""

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from troupe import bases, dataset, pipeline, provenance
from troupe.chat import as_messages
from troupe.demo.tiny import build_tiny_model, dataset_texts
from troupe.errors import TroupeError
from troupe.evaluation.report import difference_text, identity_cell, summary_rows, title, training_log
from troupe.files import read_jsonl
from troupe.layout import GENERATIONS, HELD_OUT, MODELS_DIR, base_model_location
from troupe.plan import Needs, make_plan
from troupe.recipe import Recipe, load_recipe

COLUMNS = ("references", "base", "adapter", "other_voices")
SUMMARY_KEYS = {"test_loss", "empty_rate", "punctuation_only_rate", "mean_chars", "length_ratio", "chrf", "identity"}
PROMPTS_SHOWN = 3
CLIENT_QUESTION = {"zh": "你是谁？", "en": "Who are you?"}


@dataclass(frozen=True)
class Goals:
    """What a demo was built to show (targets.md-style numbers, each checked in the summary)."""

    loss_gap: float  # adapter test loss − base, nat, at most
    style_gain: float  # style adapter − base, at least (with its 95% interval above 0)
    length: tuple[float, float]  # adapter reply length / references
    degenerate: float  # empty or punctuation-only replies, at most
    identity: int | None  # identity questions answered as the character, at least (None: not a target)
    seconds: float  # the whole demo, at most
    goal_seconds: float


DEMOS = {
    "demo": Goals(
        loss_gap=-1.0, style_gain=0.15, length=(0.5, 1.5), degenerate=0.1, identity=None, seconds=180, goal_seconds=90
    ),
    "demo_real": Goals(
        loss_gap=-0.30, style_gain=0.20, length=(0.6, 1.4), degenerate=0.05, identity=8, seconds=600, goal_seconds=300
    ),
}


def run_demo(slug: str = "demo", overrides: list[str] = ()) -> dict:
    if slug not in DEMOS:
        raise TroupeError(f"no demo '{slug}'; the demos are: {', '.join(DEMOS)}")
    started = time.perf_counter()
    recipe = load_recipe(slug, overrides)
    timings: dict[str, float] = {}

    def timed(name: str, step, *args):
        begin = time.perf_counter()
        result = step(*args)
        timings[name] = time.perf_counter() - begin
        return result

    def step(verb, needs: Needs):  # each step as its verb runs it: its own plan, checked once
        return lambda: getattr(pipeline, verb)(make_plan(recipe, needs))

    manifest = timed("convert", step("convert", Needs.SOURCE))
    timed("base model", build_base, recipe)
    timed("train", step("train", Needs.TRAIN))  # tokenises first: the prepared cache is new for a new dataset
    merged = timed("merge", step("merge", Needs.ADAPTER))
    metrics = timed("evaluate", step("evaluate", Needs.ADAPTER))
    client = timed("client", ask_through_client, recipe)
    seconds = time.perf_counter() - started
    print(demo_summary(recipe, manifest, metrics, merged, client, timings, seconds))
    return {"manifest": manifest, "metrics": metrics, "merged": merged, "client": client, "timings": timings}


def build_base(recipe: Recipe) -> Path:
    """The recipe's base model: a packaged real model (configs/bases/), or the demo's tiny one."""
    if name := bases.for_base_model(recipe.axolotl.get("base_model"), recipe.root):
        return bases.build(name, recipe.root)
    return build_tiny(recipe)


def build_tiny(recipe: Recipe, arch: str = "llama", out: Path | None = None, trained: bool = True) -> Path:
    """The tiny model for a recipe (by default at its base_model path): for the llama architecture and a
    story source, trained on the story (`base_conversations`); otherwise random, with a tokenizer
    trained on the dataset's text."""
    if not recipe.layout.split("train").is_file():
        raise TroupeError(f"no dataset for {recipe.slug} yet; run: make convert CHARACTER={recipe.slug}")
    out = out or base_folder(recipe)
    conversations = base_conversations(recipe) if arch == "llama" and trained else []
    # the tokenizer learns each line of text once (the system prompt is in every conversation)
    lines = dict.fromkeys(line for c in conversations for m in c for line in m["content"].splitlines())
    texts = list(lines) or dataset_texts(recipe.layout)
    built = build_tiny_model(out, texts, arch, conversations)
    kind = f"trained on {len(conversations)} story lines" if conversations else "random"
    print(f"tiny {arch} model ({kind}) {'built' if built else 'is current'}: {out}")
    return out


def base_folder(recipe: Recipe) -> Path:
    """The recipe's local base model folder (built or not yet): a demo never asks the hub."""
    location = base_model_location(recipe.axolotl.get("base_model"), recipe.root)
    if not location or not location.is_local:
        raise TroupeError(f"{recipe.slug}: base_model is not a folder under {MODELS_DIR}/, where demos build models")
    return location.folder


def base_conversations(recipe: Recipe) -> list[list[dict]]:
    """Every speaker's story lines in the recipe's chat format, the character's validation and test
    replies left out of the story ([] for a source of ready samples, which has no story)."""
    held_out = {
        m["content"]
        for split in HELD_OUT
        for record in read_jsonl(recipe.layout.split(split))
        if "text" not in record
        for m in as_messages(record)
        if m["role"] == "assistant"
    }
    lines = dataset.read_source(recipe).lines
    return [sample.messages for sample in dataset.story_samples(lines, recipe.spec, held_out)]


def ask_through_client(recipe: Recipe) -> dict:
    """One question to the character through the official `openai` client, answered by the app
    `troupe serve` runs (on 127.0.0.1, a free port), plainly and streamed."""
    import openai

    from troupe.evaluation.metrics import is_cjk_text
    from troupe.serve import Character, running

    character = Character(recipe)
    question = CLIENT_QUESTION["zh" if is_cjk_text([recipe.spec.prompt.system]) else "en"]
    with running(character) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=300)
        body = {"model": recipe.slug, "messages": [{"role": "user", "content": question}], "max_tokens": 64}
        plain = client.chat.completions.create(**body).choices[0].message.content
        streamed = "".join(
            c.choices[0].delta.content or "" for c in client.chat.completions.create(**body, stream=True)
        )
    return {"question": question, "reply": plain, "streamed": streamed, "model": character.loaded}


def demo_summary(recipe: Recipe, manifest, metrics: dict, merged, client: dict, timings: dict, seconds: float) -> str:
    """Data, base and adapter in one line each; base and adapter between the controls; three test
    prompts with the reference and both replies; the client's answer; the wall time; the targets."""
    counts, name = manifest["counts"], recipe.spec.character.name
    names = [n for n in COLUMNS if n in metrics["systems"] or n in metrics.get("controls", {})]
    rows = [(label, values) for label, values, _ in summary_rows(metrics, SUMMARY_KEYS)]
    lines = [
        "",
        f"demo summary: {name} ({recipe.path.name})",
        "-" * 100,
        f"data      {counts['lines']} story lines → {counts['samples']} replies of {name} → "
        f"{counts['train']} / {counts['validation']} / {counts['test']} train / validation / test",
        f"base      {_base_line(recipe)}",
        f"adapter   {_adapter_line(recipe)}",
        "",
        f"{'':22}" + "".join(f"{title(n):>20}" for n in names),
        *[f"{label:22}" + "".join(f"{values[n]:>20}" for n in names) for label, values in rows],
    ]
    if metrics["style"]["available"]:
        lines.append(f"{'style adapter − base':22}{difference_text(metrics['style']['adapter_minus_base'])}")
        lines.append(f"{'':22}(style classifier held-out accuracy {metrics['style']['held_out_accuracy']:.0%})")
    lines += [
        "",
        *_prompts(recipe.layout.eval_dir / GENERATIONS),
        *_merged_lines(recipe.layout.rel(merged), metrics),
    ]
    lines += [f"openai client  {client['question']} → {client['reply']!r} (streamed: {client['streamed']!r})"]
    lines.append(f"wall time     {seconds:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    return "\n".join([*lines, "", "targets", *targets(DEMOS[recipe.slug], metrics, seconds)])


def targets(goals: Goals, metrics: dict, seconds: float) -> list[str]:
    """Each target with what was measured and whether it was met."""
    adapter, base = metrics["systems"]["adapter"], metrics["systems"]["base"]
    styled = metrics["style"]["systems"] if metrics["style"]["available"] else {}
    diff = metrics["style"].get("adapter_minus_base", {})
    means = [styled.get(n, {}).get("mean") for n in ("references", "adapter", "other_voices")]
    loss_gap = adapter["test_loss"] - base["test_loss"]
    degenerate = adapter["empty_rate"] + adapter["punctuation_only_rate"]
    low, high = goals.length
    broken = sum(system.get("replacement_char_replies", 0) for system in metrics["systems"].values())
    checks = [
        (f"test loss adapter − base {loss_gap:+.3f} nat (≤ {goals.loss_gap:+.2f})", loss_gap <= goals.loss_gap),
        (
            f"style adapter − base {difference_text(diff)} (≥ +{goals.style_gain:.2f}, interval above 0)",
            _above(diff, goals.style_gain),
        ),
        ("style references > adapter > other voices: " + " > ".join(_number(m) for m in means), _ordered(means)),
        (
            f"adapter empty or punctuation only {degenerate:.0%} (≤ {goals.degenerate:.0%})",
            degenerate <= goals.degenerate,
        ),
        (
            f"adapter length {adapter['length_ratio']:.2f}× the references ({low}–{high}×)",
            low <= adapter["length_ratio"] <= high,
        ),
        (f"replies with U+FFFD, every system {broken} (0)", broken == 0),
    ]
    if goals.identity is not None:
        answered = adapter["identity"]["in_character"]
        checks.append(
            (
                f"identity questions answered as the character: adapter {_identity(adapter)} "
                f"(≥ {goals.identity}; base {_identity(base)})",
                answered >= goals.identity,
            )
        )
    checks += [
        (f"wall time {seconds:.0f} s (≤ {goals.seconds:.0f} s)", seconds <= goals.seconds),
        (f"goal: wall time {seconds:.0f} s ≤ {goals.goal_seconds:.0f} s", seconds <= goals.goal_seconds),
    ]
    return [f"  {'met    ' if met else 'NOT met'}  {text}" for text, met in checks]


def _identity(system: dict) -> str:
    asked = system["identity"]
    return f"{identity_cell(asked)}: {asked['named']} by name, {asked['in_voice']} in voice, {asked['as_ai']} as an AI"


def _above(diff: dict, at_least: float) -> bool:
    return diff.get("mean") is not None and diff.get("low") is not None and diff["mean"] >= at_least and diff["low"] > 0


def _ordered(means: list) -> bool:
    return None not in means and means[0] > means[1] > means[2]


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _base_line(recipe: Recipe) -> str:
    folder, record = recipe.axolotl["base_model"], provenance.read_record(base_folder(recipe)) or {}
    if record.get("step") == "base":
        return (
            f"{folder}: {record['parameters']:,} parameters, from the registry package {record['package']} "
            f"{record['package_version']} (GGUF sha256 {record['gguf_sha256'][:12]}…)"
        )
    trained = record.get("trained")
    if not trained:
        return f"{folder}: random, {record['parameters']:,} parameters"
    return (
        f"{folder}: {record['parameters']:,} parameters, {trained['steps']} steps on "
        f"{trained['conversations']} lines of every speaker (loss {_pair(trained['loss'])})"
    )


def _adapter_line(recipe: Recipe) -> str:
    log = training_log(recipe.layout.adapter_dir)
    steps = max((e.get("step", 0) for e in log), default=0)
    train = [e["loss"] for e in log if "loss" in e]
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    return f"LoRA, {steps} steps (train loss {_pair(train)}, eval loss {_pair(evals)})"


def _merged_lines(merged: str, metrics: dict) -> list[str]:
    parity = metrics.get("merge_parity")
    if not parity:
        return [f"merged model  {merged}"]
    return [
        f"merged model  {merged}: {parity['identical_replies']:.0%} of replies identical to base + adapter, "
        f"largest logit difference {parity['max_logit_diff']:.2g}"
    ]


def _prompts(generations: Path) -> list[str]:
    """The first test prompts with the reference, the base reply and the adapter reply."""
    with generations.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:PROMPTS_SHOWN]
    lines = []
    for number, row in enumerate(rows, start=1):
        context = row["context"].splitlines()[-1]  # the line the reply answers
        lines += [f"[{number}] … {context}"] + [
            f"    {n:10} {row[n] or '(empty)'}" for n in ("reference", "base", "adapter")
        ]
    return lines + [""]


def _pair(values: list[float]) -> str:
    return f"{float(values[0]):.2f} → {float(values[-1]):.2f}" if values else "-"
