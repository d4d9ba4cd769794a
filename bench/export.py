"""The export, measured on the real model: `troupe export demo_real`, then llama.cpp against
transformers on every test prompt (72; the issue asks for 50 or more), for each exported file.

    .venv/bin/python bench/export.py       # after make demo-real (it needs the merged model)

Prints the export's time and file sizes and, per file, the share of prompts whose tokens from the
GGUF's own chat template equal transformers' apply_chat_template, teacher-forced top-1 agreement on
the reference replies, and the share of identical 32-token greedy replies; the numbers also go to
bench/results/export.json.
"""

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from troupe import provenance  # noqa: E402
from troupe.export import agreement, export  # noqa: E402
from troupe.files import read_jsonl  # noqa: E402
from troupe.recipe import load_recipe  # noqa: E402

RESULTS = REPO / "bench" / "results" / "export.json"
TARGETS = {"f16": 0.99, "q8_0": 0.97, "base-f16 + lora": 0.99}


def main() -> None:
    recipe = load_recipe("demo_real", root=REPO)
    started = time.perf_counter()
    folder = export(recipe)
    seconds = time.perf_counter() - started
    record = provenance.read_record(folder, "export")
    prompts = len(read_jsonl(recipe.layout.split("test")))
    checked = agreement(recipe, provenance.training_config(recipe.layout), recipe.layout.export_files(), prompts)
    print(
        f"\nexport {seconds:.0f} s (conversion: "
        + ", ".join(f"{n} {e['seconds']} s" for n, e in record["files"].items())
        + ")"
    )
    for name, result in checked.items():
        if isinstance(result, dict):
            met = "met" if result["top1_agreement"] >= TARGETS[name] else "NOT met"
            print(
                f"{name:16} prompt tokens equal {result['same_prompt_tokens']:.0%}, top-1 agreement "
                f"{result['top1_agreement']:.2%} (≥ {TARGETS[name]:.0%}: {met}), "
                f"greedy identical {result['same_greedy']:.0%}"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"seconds": round(seconds, 1), "files": record["files"], "checked": checked}, indent=1)
    )
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
