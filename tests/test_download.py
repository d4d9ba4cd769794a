"""Downloading stories from ASTR links against a real HTTP server on 127.0.0.1, with faults:
500s, 429 with Retry-After, timeouts, truncated and garbled bodies, 404s, a killed run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, cli
from story_server import StoryServer

from troupe.cli import main
from troupe.new import new_recipe

FIXTURES = Path(__file__).parent / "fixtures" / "arknights"
READER = "https://050644zf.github.io/ArknightsStoryTextReader/#/zh_CN/content?f="
STORIES = {  # story path (the reader's f=) → file served
    "obt/main/level_demo_01": REPO / "recipes/demo/level_demo_01.json",
    "obt/main/level_demo_02": REPO / "recipes/demo/level_demo_02.json",
    "activities/a900/level_demo_03": REPO / "recipes/demo/level_demo_03.json",
    "obt/main/level_fix_a": FIXTURES / "layout_a_list.json",
    "obt/main/level_fix_b": FIXTURES / "layout_b_object.json",
    "obt/main/level_fix_c": FIXTURES / "layout_c_event_figure_art.json",
    "obt/main/level_fix_d": FIXTURES / "layout_d_single_line.json",
}


def served_path(story: str) -> str:
    return f"zh_CN/gamedata/story/{story}.json"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    for story, source in STORIES.items():
        (folder / served_path(story)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / served_path(story))
    return folder


def make_project(root: Path, links: list[str]) -> Path:
    (root / "recipes").mkdir(parents=True)
    shutil.copy(REPO / "recipes" / "demo.yaml", root / "recipes" / "demo.yaml")
    new_recipe("ark", root / "recipes" / "demo.yaml", root)
    (root / "recipes" / "ark.urls.txt").write_text("# test links\n\n" + "\n".join(links) + "\n", encoding="utf-8")
    return root


def overrides(server: StoryServer, **extra) -> list[str]:
    words = [
        "troupe.source.files=[]",  # the stories are the links in recipes/ark.urls.txt
        f"troupe.source.base_url={server.base_url}",
        "troupe.source.timeout=1",
    ]
    return words + [f"troupe.source.{key}={value}" for key, value in extra.items()]


def convert(root: Path, server: StoryServer, monkeypatch, **extra) -> int:
    monkeypatch.setenv("TROUPE_ROOT", str(root))
    return main(["convert", "ark", *overrides(server, **extra)])


def split_hashes(root: Path) -> dict:
    manifest = json.loads((root / "datasets" / "ark" / "manifest.json").read_text())
    return {name: entry["sha256"] for name, entry in manifest["files"].items()}


ALL_LINKS = [READER + story for story in STORIES]


@pytest.fixture(scope="module")
def fault_free(served, tmp_path_factory) -> dict:
    root = make_project(tmp_path_factory.mktemp("clean"), ALL_LINKS)
    with StoryServer(served) as server:
        cli("convert", "ark", *overrides(server), root=root)
    return split_hashes(root)


def test_faults_are_retried_and_the_dataset_is_identical(
    story_server, served, fault_free, tmp_path, monkeypatch, capsys
):
    root = make_project(tmp_path, ALL_LINKS)
    server = story_server(served, stall=2.5)
    faults = {
        "obt/main/level_demo_01": ("500", "500"),
        "obt/main/level_demo_02": ("429",),
        "activities/a900/level_demo_03": ("timeout",),
        "obt/main/level_fix_a": ("truncate",),
        "obt/main/level_fix_b": ("garbage", "500"),
    }
    for story, injected in faults.items():
        server.inject(served_path(story), *injected)
    assert convert(root, server, monkeypatch) == 0
    for story, injected in faults.items():
        assert server.requests[served_path(story)] == len(injected) + 1, story
    assert split_hashes(root) == fault_free
    assert "downloaded 7, cached 0, failed 0" in capsys.readouterr().out


def test_a_rerun_requests_nothing(story_server, served, tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path, ALL_LINKS)
    server = story_server(served)
    assert convert(root, server, monkeypatch) == 0
    first = server.total_requests
    assert convert(root, server, monkeypatch) == 0
    assert (first, server.total_requests) == (7, 7)
    assert "downloaded 0, cached 7, failed 0" in capsys.readouterr().out


def test_a_404_fails_loudly_unless_missing_stories_are_allowed(story_server, served, tmp_path, monkeypatch, capsys):
    root = make_project(tmp_path, [*ALL_LINKS, READER + "obt/main/no_such_story"])
    server = story_server(served)
    assert convert(root, server, monkeypatch) == 1
    err = capsys.readouterr().err
    assert "1 story link(s) failed" in err and "recipes/ark.urls.txt:10" in err and "HTTP 404" in err
    assert not list((root / "datasets" / ".cache" / "arknights").rglob("no_such_story.json"))
    assert convert(root, server, monkeypatch, allow_missing="true") == 0
    manifest = json.loads((root / "datasets" / "ark" / "manifest.json").read_text())
    assert [m["link"] for m in manifest["missing"]] == ["recipes/ark.urls.txt:10"]


def test_refused_links_name_their_line_and_are_never_fetched(story_server, served, tmp_path, monkeypatch, capsys):
    bad = [
        "https://050644zf.github.io/ArknightsStoryTextReader/#/zh_CN/menu",
        READER + "../../secret",
        "https://050644zf.github.io/ArknightsStoryTextReader/#/xx_XX/content?f=obt/main/a",
    ]
    root = make_project(tmp_path, [ALL_LINKS[0], *bad])
    server = story_server(served)
    assert convert(root, server, monkeypatch) == 1
    assert server.total_requests == 1  # only the good link
    err = capsys.readouterr().err
    for line, reason in ((4, "no story in this link"), (5, "unsafe story path"), (6, "unknown server 'xx_XX'")):
        assert f"recipes/ark.urls.txt:{line}: " in err and reason in err


@pytest.mark.slow  # two processes of its own, one killed mid-download
def test_a_killed_download_leaves_no_corrupt_file_and_resumes(story_server, served, fault_free, tmp_path):
    root = make_project(tmp_path, ALL_LINKS)
    cache = root / "datasets" / ".cache" / "arknights"
    server = story_server(served, latency=0.4)
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    cmd = [sys.executable, "-m", "troupe", "convert", "ark", *overrides(server, workers=1)]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while server.total_requests < 3 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    cached = sorted(cache.rglob("*.json"))
    assert 0 < len(cached) < len(STORIES)
    for path in cached:
        json.loads(path.read_text(encoding="utf-8"))  # every cached file is whole
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"downloaded {len(STORIES) - len(cached)}, cached {len(cached)}" in done.stdout
    assert split_hashes(root) == fault_free
    assert not list(cache.rglob("*.tmp"))


def test_discover_lists_the_stories_where_the_character_speaks(story_server, served, tmp_path, monkeypatch, capsys):
    index = {
        "main_1": {"id": "main_1", "infoUnlockDatas": [{"storyTxt": s, "storyCode": "x"} for s in list(STORIES)[:4]]},
        "act_9": {
            "id": "act_9",
            "infoUnlockDatas": [{"storyTxt": s} for s in list(STORIES)[4:]]
            + [{"storyTxt": "obt/main/gone"}, {"storyTxt": "../escape"}, {"storyCode": "no storyTxt"}],
        },
    }
    folder = tmp_path / "served"
    shutil.copytree(served, folder)
    (folder / "zh_CN/gamedata/excel").mkdir(parents=True)
    (folder / "zh_CN/gamedata/excel/story_review_table.json").write_text(json.dumps(index), encoding="utf-8")
    root = make_project(tmp_path / "root", [])
    monkeypatch.setenv("TROUPE_ROOT", str(root))
    server = story_server(folder)
    assert main(["discover", "ark", *overrides(server)]) == 0
    out, err = capsys.readouterr()
    assert "wrote 3 links to recipes/ark.urls.txt" in out
    assert "obt/main/gone" in err and "../escape" in err  # reported, not fatal
    links = [x for x in (root / "recipes/ark.urls.txt").read_text().splitlines() if not x.startswith("#")]
    assert links == [
        READER + s for s in ("obt/main/level_demo_01", "obt/main/level_demo_02", "activities/a900/level_demo_03")
    ]
    assert convert(root, server, monkeypatch) == 0
