"""The real demo, measured: `troupe demo --recipe demo_real` in fresh copies of the project (nothing
built: no base model, dataset or adapter), one after the other on this machine, with the same venv.

    .venv/bin/python bench/demo_real.py [--runs 2]

Each run's summary is printed; its numbers (targets, timings, the client's reply) go to
bench/results/demo_real.json, one entry per run, so two runs can be compared line by line.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from troupe.layout import Layout

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "demo_real.json"
TARGET_LINE = re.compile(r"^  (met    |NOT met)  (.*)$")


def fresh_project(folder: Path) -> Path:
    """What a clone has that troupe reads at run time: recipes/ and configs/."""
    for name in ("recipes", "configs"):
        shutil.copytree(REPO / name, folder / name)
    return folder


def run_once(folder: Path) -> dict:
    env = {**os.environ, "TROUPE_ROOT": str(fresh_project(folder))}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "troupe", "demo", "--recipe", "demo_real"], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"the demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = done.stdout[done.stdout.index("demo summary") :]
    print(summary)
    lines = summary.splitlines()
    targets = [{"met": m[1] == "met    ", "target": m[2]} for m in map(TARGET_LINE.match, lines) if m]
    metrics = json.loads(Layout(folder, "demo_real").metrics.read_text())
    return {"seconds": round(seconds, 1), "targets": targets, "summary": summary, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    runs = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="demo_real-") as folder:
            print(f"run {number} of {args.runs} in a fresh folder")
            runs.append(run_once(Path(folder)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(runs, ensure_ascii=False, indent=1), encoding="utf-8")
    for number, run in enumerate(runs, start=1):
        met = sum(t["met"] for t in run["targets"])
        print(f"run {number}: {run['seconds']:.0f} s, {met} of {len(run['targets'])} targets met")
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
