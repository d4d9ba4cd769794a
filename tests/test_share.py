"""Share → import elsewhere → verify: the same dataset, proven by the lock; a story changed upstream
is reported with the file and by how many samples; imports pass the safety policy first."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from story_server import DEMO_STORIES, READER, StoryServer, serve_demo_stories

from troupe.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def served(tmp_path) -> Path:
    return serve_demo_stories(tmp_path / "served")


def sharer(root: Path, base_url: str) -> None:
    """A project whose recipe downloads the demo story from `base_url` (a local mirror)."""
    (root / "recipes").mkdir(parents=True)
    text = (REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "files: [recipes/demo/*.json]  # local story files; kaltsit downloads its stories instead",
        f"base_url: {base_url}  # the stories are the links in recipes/fog.urls.txt",
    )
    (root / "recipes" / "fog.yaml").write_text(text, encoding="utf-8")
    (root / "recipes" / "fog.urls.txt").write_text("".join(f"{READER}{s}\n" for s in DEMO_STORIES), encoding="utf-8")


def run(root: Path, monkeypatch, *args: str) -> int:
    monkeypatch.setenv("TROUPE_ROOT", str(root))
    return main(list(args))


def test_round_trip_and_a_story_changed_upstream(served, tmp_path, monkeypatch, capsys):
    with StoryServer(served) as server:
        sharer(tmp_path / "a", server.base_url)
        assert run(tmp_path / "a", monkeypatch, "convert", "fog") == 0
        assert run(tmp_path / "a", monkeypatch, "share", "fog") == 0
        shared = tmp_path / "a" / "outputs" / "fog" / "share" / "fog.recipe.yaml"
        document = yaml.safe_load(shared.read_text(encoding="utf-8"))
        assert set(document) == {"troupe_share", "slug", "recipe", "files", "lock"}
        assert str(tmp_path) not in shared.read_text(encoding="utf-8")  # no paths from the sharer's machine
        assert not list((tmp_path / "a" / "outputs" / "fog" / "share").glob("*.jsonl"))  # no data

        receiver = tmp_path / "b"
        (receiver / "recipes").mkdir(parents=True)
        assert run(receiver, monkeypatch, "import", str(shared)) == 0
        assert (receiver / "recipes" / "fog.urls.txt").is_file() and (receiver / "recipes" / "fog.lock.json").is_file()
        capsys.readouterr()
        assert run(receiver, monkeypatch, "verify", "fog") == 0
        assert "identical to the lock" in capsys.readouterr().out
        assert not (receiver / "datasets" / "fog").exists()  # verify builds aside; it never touches datasets/
        assert run(receiver, monkeypatch, "convert", "fog") == 0
        manifest = json.loads((receiver / "datasets" / "fog" / "manifest.json").read_text())
        original = json.loads((tmp_path / "a" / "datasets" / "fog" / "manifest.json").read_text())
        assert manifest["files"] == original["files"]

        story = served / "zh_CN/gamedata/story/obt/main/level_demo_02.json"
        story.write_text(
            story.read_text(encoding="utf-8").replace("那就用我的。", "那就睡我的草垫。"), encoding="utf-8"
        )
        third = tmp_path / "c"
        (third / "recipes").mkdir(parents=True)
        assert run(third, monkeypatch, "import", str(shared)) == 0
        assert run(third, monkeypatch, "verify", "fog") == 1
    err = capsys.readouterr().err
    assert "source zh_CN/gamedata/story/obt/main/level_demo_02.json: changed" in err
    assert "sample(s) new" in err and "differs from the lock" in err


def test_import_refuses_overwrites_and_unsafe_recipes(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    shutil.copytree(REPO / "recipes", root / "recipes")
    document = {
        "troupe_share": 1,
        "slug": "evil",
        "files": {},
        "lock": {"sources": [], "splits": {}},  # a minimal valid lock
        "recipe": (REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8") + "\ntrust_remote_code: true\n",
    }
    shared = tmp_path / "evil.recipe.yaml"
    shared.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    assert run(root, monkeypatch, "import", str(shared)) == 1
    assert "unsafe: runs Python code" in capsys.readouterr().err and not (root / "recipes" / "evil.yaml").exists()
    assert run(root, monkeypatch, "import", str(shared), "--allow-unsafe") == 0
    assert run(root, monkeypatch, "import", str(shared), "--allow-unsafe") == 1
    assert "FORCE=1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"slug": "../x"}, "slug"),
        ({"files": {"/etc/cron.d/x": "evil"}}, "does not belong to 'fine'"),
        ({"files": {"recipes/../../x": "evil"}}, "does not belong to 'fine'"),
        ({"files": {"recipes/fine.urls.txt": 3}}, "files"),
        ({"troupe_share": 9}, "not a troupe"),
        ({"lock": {}}, "lock"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_import_refuses_malformed_files(tmp_path, monkeypatch, capsys, change, message):
    lock = {"splits": {}, "sources": []}
    document = {"troupe_share": 1, "slug": "fine", "files": {}, "lock": lock, "recipe": "seed: 1\n", **change}
    shared = tmp_path / "x.recipe.yaml"
    shared.write_text(yaml.safe_dump(document), encoding="utf-8")
    (tmp_path / "recipes").mkdir()
    assert run(tmp_path, monkeypatch, "import", str(shared)) == 1
    assert message in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "recipes").iterdir()] == []


def test_share_refuses_a_recipe_holding_a_secret(project, monkeypatch, capsys):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nwandb_api_key: abc123\n", encoding="utf-8")
    assert run(project, monkeypatch, "share", "demo") == 1
    assert "wandb_api_key: looks like a secret" in capsys.readouterr().err
    assert not (project / "outputs" / "demo" / "share").exists()  # refused before anything is written
