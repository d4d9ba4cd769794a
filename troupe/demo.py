"""`make demo`: the main job end to end on a tiny model built here, on CPU, offline.

    troupe demo     # convert → tiny model → preprocess → train → evaluate → merge, then a summary

The recipe is recipes/demo.yaml: an original short story (recipes/demo/*.json, in the real
ArknightsStoryJson layouts) and one target character, trained on models/tiny, which is built from
the dataset's own text (troupe tiny-model).
"""

import time
from pathlib import Path

from troupe import pipeline
from troupe.errors import TroupeError
from troupe.evaluation.report import training_log
from troupe.recipe import Recipe, load_recipe
from troupe.tiny import build_tiny_model, dataset_texts

DEMO = "demo"


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
    timed("tiny model", build_tiny, recipe)
    timed("preprocess", pipeline.preprocess, recipe)
    timed("train", pipeline.train, recipe)
    metrics = timed("evaluate", pipeline.evaluate, recipe)
    merged = timed("merge", pipeline.merge, recipe)
    print(demo_summary(recipe, manifest, metrics, merged, timings, time.perf_counter() - started))
    return {"manifest": manifest, "metrics": metrics, "merged": merged, "timings": timings}


def build_tiny(recipe: Recipe, arch: str = "llama", out: Path | None = None) -> Path:
    """The tiny model for a recipe, trained on its dataset's text (by default at its base_model path)."""
    if not recipe.layout.split("train").is_file():
        raise TroupeError(f"no dataset for {recipe.slug} yet; run: make convert CHARACTER={recipe.slug}")
    out = out or recipe.root / recipe.axolotl["base_model"]
    built = build_tiny_model(out, dataset_texts(recipe.dataset_dir), arch)
    print(f"tiny {arch} model {'built' if built else 'is current'}: {out}")
    return out


def demo_summary(recipe: Recipe, manifest: dict, metrics: dict, merged, timings: dict, seconds: float) -> str:
    log = training_log(recipe.layout.adapter_dir)
    train_losses = [e["loss"] for e in log if "loss" in e]
    eval_losses = [e["eval_loss"] for e in log if "eval_loss" in e]
    steps = max((e.get("step", 0) for e in log), default=0)
    counts, adapter = manifest["counts"], metrics["systems"]["adapter"]
    rows = [
        ("samples (train/val/test)", f"{counts['train']} / {counts['validation']} / {counts['test']}"),
        ("training steps", str(steps)),
        ("train loss (first → last)", _pair(train_losses)),
        ("eval loss (first → last)", _pair(eval_losses)),
        ("test loss / perplexity", f"{adapter['test_loss']:.3f} / {adapter['test_perplexity']:.1f}"),
        ("reply chars (adapter / references)", f"{adapter['mean_chars']:.1f} / {adapter['reference_mean_chars']:.1f}"),
        ("merged model", str(merged)),
        ("wall time", f"{seconds:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(["", "demo summary", "-" * (width + 30), *[f"{label:<{width}}  {value}" for label, value in rows]])


def _pair(values: list[float]) -> str:
    return f"{float(values[0]):.3f} → {float(values[-1]):.3f}" if values else "-"
