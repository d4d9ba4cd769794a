"""Download benchmark: 263 story links (the seed's list size) against a local server that adds
100 ms to every request, fetched the seed's way (one `requests.get` after another) and troupe's
way (a bounded thread pool into the cache), then once more to count the requests a rerun makes.

    .venv/bin/python bench/download.py [--links 263] [--latency 0.1]

Prints a table with wall times and ratios against the sequential baseline measured in the same run.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the test suite's local story server

from story_server import StoryServer  # noqa: E402

from troupe.download import Fetch, fetch_all  # noqa: E402

STORY = REPO / "recipes" / "demo" / "level_demo_02.json"


def serve_stories(folder: Path, count: int) -> list[str]:
    """`count` story files in the ArknightsStoryJson layout; returns their paths."""
    paths = [f"zh_CN/gamedata/story/bench/level_{i:03d}.json" for i in range(count)]
    body = STORY.read_bytes()
    for path in paths:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(body)
    return paths


def sequential(base_url: str, paths: list[str], cache: Path) -> None:
    """The seed's download loop: requests.get, parse, save, one story at a time."""
    for path in paths:
        data = requests.get(base_url + path, timeout=60).json()
        (cache / path).parent.mkdir(parents=True, exist_ok=True)
        (cache / path).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def troupe_fetch(base_url: str, paths: list[str], cache: Path, workers: int) -> None:
    items = [Fetch(base_url + p, cache / p, p) for p in paths]
    report = fetch_all(items, json.loads, workers=workers, progress=False)
    assert not report.failed, report.failed[:3]


def timed(step, *args) -> float:
    start = time.perf_counter()
    step(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--links", type=int, default=263)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, StoryServer(Path(tmp) / "served", latency=args.latency) as server:
        paths = serve_stories(Path(tmp) / "served", args.links)
        rows = [("sequential requests.get (seed)", timed(sequential, server.base_url, paths, Path(tmp) / "seq"))]
        for workers in (8, 16):
            cache = Path(tmp) / f"cache{workers}"
            rows.append((f"troupe, {workers} workers", timed(troupe_fetch, server.base_url, paths, cache, workers)))
        before = server.total_requests
        rerun = timed(troupe_fetch, server.base_url, paths, Path(tmp) / "cache8", 8)
        rerun_requests = server.total_requests - before
    baseline = rows[0][1]
    print(f"{args.links} links, {args.latency * 1000:.0f} ms added per request\n")
    print(f"| {'run':32} | wall time | speed-up |\n|{'-' * 34}|-----------|----------|")
    for name, seconds in rows:
        print(f"| {name:32} | {seconds:7.2f} s | {baseline / seconds:7.1f}× |")
    print(f"| {'rerun (everything cached)':32} | {rerun:7.2f} s | requests made: {rerun_requests} |")


if __name__ == "__main__":
    main()
