"""Share → import elsewhere → verify: the same dataset, proven by the lock; a story changed upstream
is reported with the file and by how many samples; imports pass the safety policy first."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import REPO, cli
from story_server import DEMO_STORIES, READER


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


def test_round_trip_and_a_story_changed_upstream(story_server, tmp_path):
    server = story_server()
    sharer(tmp_path / "a", server.base_url)
    cli("convert", "fog", root=tmp_path / "a")
    cli("share", "fog", root=tmp_path / "a")
    shared = tmp_path / "a" / "outputs" / "fog" / "share" / "fog.recipe.yaml"
    document = yaml.safe_load(shared.read_text(encoding="utf-8"))
    assert set(document) == {"troupe_share", "slug", "recipe", "files", "lock"}
    assert str(tmp_path) not in shared.read_text(encoding="utf-8")  # no paths from the sharer's machine
    assert not list((tmp_path / "a" / "outputs" / "fog" / "share").glob("*.jsonl"))  # no data

    receiver = tmp_path / "b"
    (receiver / "recipes").mkdir(parents=True)
    cli("import", str(shared), root=receiver)
    assert (receiver / "recipes" / "fog.urls.txt").is_file() and (receiver / "recipes" / "fog.lock.json").is_file()
    cli("verify", "fog", root=receiver)  # exit 0: what it builds is identical to the lock
    assert not (receiver / "datasets" / "fog").exists()  # verify builds aside; it never touches datasets/
    cli("convert", "fog", root=receiver)
    manifest = json.loads((receiver / "datasets" / "fog" / "manifest.json").read_text())
    original = json.loads((tmp_path / "a" / "datasets" / "fog" / "manifest.json").read_text())
    assert manifest["files"] == original["files"]

    story = server.folder / "zh_CN/gamedata/story/obt/main/level_demo_02.json"
    story.write_text(story.read_text(encoding="utf-8").replace("那就用我的。", "那就睡我的草垫。"), encoding="utf-8")
    third = tmp_path / "c"
    (third / "recipes").mkdir(parents=True)
    cli("import", str(shared), root=third)
    refused = cli("verify", "fog", root=third, check=False)
    assert refused.returncode == 1 and "zh_CN/gamedata/story/obt/main/level_demo_02.json" in refused.stderr  # the file
    assert "sample(s) new" in refused.stderr  # and by how many samples it differs


def test_import_refuses_overwrites_and_unsafe_recipes(tmp_path):
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
    refused = cli("import", shared, root=root, check=False)
    assert refused.returncode == 1 and "trust_remote_code" in refused.stderr and "ALLOW_UNSAFE" in refused.stderr
    assert not (root / "recipes" / "evil.yaml").exists()
    cli("import", shared, "--allow-unsafe", root=root)
    again = cli("import", shared, "--allow-unsafe", root=root, check=False)
    assert again.returncode == 1 and "FORCE=1" in again.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        ({"slug": "../x"}, "slug"),
        ({"files": {"/etc/cron.d/x": "evil"}}, "does not belong to 'fine'"),
        ({"files": {"recipes/../../x": "evil"}}, "does not belong to 'fine'"),
        ({"files": {"recipes/fine.urls.txt": 3}}, "files"),
        ({"troupe_share": 9}, "troupe_share"),
        ({"lock": {}}, "lock"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_import_refuses_malformed_files(tmp_path, change, message):
    lock = {"splits": {}, "sources": []}
    document = {"troupe_share": 1, "slug": "fine", "files": {}, "lock": lock, "recipe": "seed: 1\n", **change}
    shared = tmp_path / "x.recipe.yaml"
    shared.write_text(yaml.safe_dump(document), encoding="utf-8")
    (tmp_path / "recipes").mkdir()
    refused = cli("import", shared, root=tmp_path, check=False)
    assert refused.returncode == 1 and message in refused.stderr
    assert [p.name for p in (tmp_path / "recipes").iterdir()] == []


def test_share_refuses_a_recipe_holding_a_secret(project):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nwandb_api_key: abc123\n", encoding="utf-8")
    refused = cli("share", "demo", root=project, check=False)
    assert refused.returncode == 1 and "wandb_api_key" in refused.stderr  # the key
    assert not (project / "outputs" / "demo" / "share").exists()  # refused before anything is written
