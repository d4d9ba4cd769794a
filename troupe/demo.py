"""`make demo`: the main job end to end on a tiny model built here, on CPU, offline.

    troupe demo     # convert → base model → train → evaluate → merge, then a summary

The recipe is recipes/demo.yaml: an original story (recipes/demo/*.json, in the real
ArknightsStoryJson layouts) and one target character. Its base, models/tiny, is a small decoder
trained here on the story's lines from every speaker (`troupe tiny-model`), never on the
character's validation and test replies; the LoRA then learns the character's voice on top of it.
"""

import csv
import json
import time
from pathlib import Path

from troupe import dataset, pipeline
from troupe.errors import TroupeError
from troupe.evaluation.generation import as_messages
from troupe.evaluation.report import difference_text, summary_rows, title, training_log
from troupe.files import read_jsonl
from troupe.recipe import Recipe, load_recipe
from troupe.tiny import build_tiny_model, dataset_texts

DEMO = "demo"
SUMMARY_KEYS = {"test_loss", "empty_rate", "punctuation_only_rate", "mean_chars", "length_ratio", "chrf"}
COLUMNS = ("references", "base", "adapter", "other_voices")
PROMPTS_SHOWN = 3


def run_demo(overrides: list[str] = ()) -> dict:
    started = time.perf_counter()
    recipe = load_recipe(DEMO, overrides)
    timings: dict[str, float] = {}

    def timed(name: str, step, *args):
        begin = time.perf_counter()
        result = step(*args)
        timings[name] = time.perf_counter() - begin
        return result

    manifest = timed("convert", pipeline.convert, recipe)
    timed("base model", build_tiny, recipe)
    timed("train", pipeline.train, recipe)  # tokenises first: the prepared cache is new for a new dataset
    metrics = timed("evaluate", pipeline.evaluate, recipe)
    merged = timed("merge", pipeline.merge, recipe)
    print(demo_summary(recipe, manifest, metrics, merged, timings, time.perf_counter() - started))
    return {"manifest": manifest, "metrics": metrics, "merged": merged, "timings": timings}


def build_tiny(recipe: Recipe, arch: str = "llama", out: Path | None = None, trained: bool = True) -> Path:
    """The tiny model for a recipe (by default at its base_model path): for the llama architecture and a
    story source, trained on the story (`base_conversations`); otherwise random, with a tokenizer
    trained on the dataset's text."""
    if not recipe.layout.split("train").is_file():
        raise TroupeError(f"no dataset for {recipe.slug} yet; run: make convert CHARACTER={recipe.slug}")
    out = out or recipe.root / recipe.axolotl["base_model"]
    conversations = base_conversations(recipe) if arch == "llama" and trained else []
    # the tokenizer learns each line of text once (the system prompt is in every conversation)
    lines = dict.fromkeys(line for c in conversations for m in c for line in m["content"].splitlines())
    texts = list(lines) or dataset_texts(recipe.dataset_dir)
    built = build_tiny_model(out, texts, arch, conversations)
    kind = f"trained on {len(conversations)} story lines" if conversations else "random"
    print(f"tiny {arch} model ({kind}) {'built' if built else 'is current'}: {out}")
    return out


def base_conversations(recipe: Recipe) -> list[list[dict]]:
    """Every speaker's story lines in the recipe's chat format, the character's validation and test
    replies left out of the story ([] for a source of ready samples, which has no story)."""
    held_out = {
        m["content"]
        for split in ("validation", "test")
        for record in read_jsonl(recipe.layout.split(split))
        if "text" not in record
        for m in as_messages(record)
        if m["role"] == "assistant"
    }
    lines = dataset.read_source(recipe).lines
    return [sample.messages for sample in dataset.story_samples(lines, recipe.spec, held_out)]


def demo_summary(recipe: Recipe, manifest: dict, metrics: dict, merged, timings: dict, seconds: float) -> str:
    """Data, base and adapter in one line each; base and adapter between the controls; three test
    prompts with the reference and both replies; the wall time."""
    counts = manifest["counts"]
    names = [n for n in COLUMNS if n in metrics["systems"] or n in metrics.get("controls", {})]
    rows = [(label, values) for label, values, _ in summary_rows(metrics, SUMMARY_KEYS)]
    lines = [
        "",
        f"demo summary: {recipe.spec.character.name} ({recipe.path.name})",
        "-" * 100,
        f"data      {counts['lines']} story lines → {counts['samples']} replies of {recipe.spec.character.name} → "
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
    lines += ["", *_prompts(recipe.layout.eval_dir / "generations.csv"), f"merged model  {merged}"]
    lines.append(f"wall time     {seconds:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")")
    return "\n".join([*lines, "", "targets", *targets(metrics, seconds)])


def targets(metrics: dict, seconds: float) -> list[str]:
    """What the demo was built to show, each with what was measured and whether it was met."""
    adapter, base = metrics["systems"]["adapter"], metrics["systems"]["base"]
    styled = metrics["style"]["systems"] if metrics["style"]["available"] else {}
    diff = metrics["style"].get("adapter_minus_base", {})
    means = [styled.get(n, {}).get("mean") for n in ("references", "adapter", "other_voices")]
    loss_gap = adapter["test_loss"] - base["test_loss"]
    checks = [
        (f"adapter empty {adapter['empty_rate']:.0%} (≤ 5%)", adapter["empty_rate"] <= 0.05),
        (
            f"adapter punctuation only {adapter['punctuation_only_rate']:.0%} (≤ 10%)",
            adapter["punctuation_only_rate"] <= 0.1,
        ),
        (
            f"adapter length {adapter['length_ratio']:.2f}× the references (0.5–1.5×)",
            0.5 <= adapter["length_ratio"] <= 1.5,
        ),
        (f"style adapter − base {difference_text(diff)} (≥ +0.15, interval above 0)", _above(diff, 0.15)),
        ("style references > adapter > other voices: " + " > ".join(_number(m) for m in means), _ordered(means)),
        (f"test loss adapter − base {loss_gap:+.3f} nat (≤ −1)", loss_gap <= -1),
        (f"wall time {seconds:.0f} s (≤ 180 s; goal ≤ 90 s)", seconds <= 180),
    ]
    return [f"  {'met    ' if met else 'NOT met'}  {text}" for text, met in checks]


def _above(diff: dict, at_least: float) -> bool:
    return diff.get("mean") is not None and diff.get("low") is not None and diff["mean"] >= at_least and diff["low"] > 0


def _ordered(means: list) -> bool:
    return None not in means and means[0] > means[1] > means[2]


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _base_line(recipe: Recipe) -> str:
    record = json.loads((recipe.root / recipe.axolotl["base_model"] / "troupe_tiny.json").read_text())
    trained = record.get("trained")
    if not trained:
        return f"{recipe.axolotl['base_model']}: random, {record['parameters']:,} parameters"
    return (
        f"{recipe.axolotl['base_model']}: {record['parameters']:,} parameters, {trained['steps']} steps on "
        f"{trained['conversations']} lines of every speaker (loss {_pair(trained['loss'])})"
    )


def _adapter_line(recipe: Recipe) -> str:
    log = training_log(recipe.layout.adapter_dir)
    steps = max((e.get("step", 0) for e in log), default=0)
    train = [e["loss"] for e in log if "loss" in e]
    evals = [e["eval_loss"] for e in log if "eval_loss" in e]
    return f"LoRA, {steps} steps (train loss {_pair(train)}, eval loss {_pair(evals)})"


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
