"""What troupe writes and prints never carries a secret or a terminal escape, and what it stages never
leaves half a result: URL credentials and the judge key are redacted from shares, manifests and judge
records; every verb that fetches passes the data policy first; controls in untrusted text are shown
escaped; a share import that fails writes nothing; the server answers bad text with a 400 and a busy
port with one line."""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from helpers import REPO
from story_server import DEMO_STORIES, READER

from troupe.cli import main
from troupe.evaluation import SystemRun, judge
from troupe.evaluation.generation import Case, Reply
from troupe.recipe import load_recipe

KEY = "sk-live-5ecret-key-0123456789"
PASSWORD = "hunter2-pa55"


class Mirror:
    """A story mirror on `host` serving `files` (path → body), 404 otherwise, counting requests."""

    def __init__(self, host: str = "127.0.0.1", files: dict[str, bytes] | None = None):
        mirror, self.requests = self, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.requests.append(self.path)
                body = (files or {}).get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.base_url = f"http://{host}:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def mirrored_project(root: Path, base_url: str) -> None:
    """recipes/fog.yaml: the demo's character, its stories linked in recipes/fog.urls.txt on `base_url`."""
    (root / "recipes").mkdir(parents=True)
    text = (REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8")
    local = "files: [recipes/demo/*.json]  # local story files; kaltsit downloads its stories instead"
    (root / "recipes" / "fog.yaml").write_text(text.replace(local, f"base_url: {base_url}"), encoding="utf-8")
    (root / "recipes" / "fog.urls.txt").write_text("".join(f"{READER}{s}\n" for s in DEMO_STORIES), encoding="utf-8")


def text_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(errors="ignore") for p in root.rglob("*") if p.is_file()}


# ---- secrets in outputs ---------------------------------------------------------------------------


def credentialed_project(root: Path, base_url: str) -> None:
    """recipes/fog.yaml downloading the demo stories from a mirror whose URL carries credentials, in
    its value and in a comment, and a link list holding credentials in a comment and in a link."""
    (root / "recipes").mkdir(parents=True)
    text = (REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8")
    credentialed = base_url.replace("http://", f"http://mirror-user:{PASSWORD}@")
    text = text.replace(
        "files: [recipes/demo/*.json]  # local story files; kaltsit downloads its stories instead",
        f"base_url: {credentialed}  # was https://old-user:{PASSWORD}@mirror.example/",
    )
    (root / "recipes" / "fog.yaml").write_text(text, encoding="utf-8")
    links = [f"# found with https://index-user:{PASSWORD}@index.example/search\n"]
    links += [f"{READER.replace('https://', f'https://reader:{PASSWORD}@')}{s}\n" for s in DEMO_STORIES]
    (root / "recipes" / "fog.urls.txt").write_text("".join(links), encoding="utf-8")


def test_a_share_and_the_manifest_hold_no_url_credentials(tmp_path, monkeypatch, story_server):
    root = tmp_path / "a"
    credentialed_project(root, story_server().base_url)
    monkeypatch.setenv("TROUPE_ROOT", str(root))
    assert main(["convert", "fog"]) == 0
    assert main(["share", "fog"]) == 0
    written = {name: text for name, text in text_files(root).items() if not name.startswith("recipes/")}
    assert "outputs/fog/share/fog.recipe.yaml" in written and "datasets/fog/manifest.json" in written
    assert not [name for name, text in written.items() if PASSWORD in text]
    shared = written["outputs/fog/share/fog.recipe.yaml"]
    assert "mirror-user" not in shared and "http://REDACTED@127.0.0.1" in shared  # the mirror is still named


class EchoJudge:
    """An OpenAI-compatible judge that answers every request with the request itself, headers included."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                echo = f"{self.headers}\n{body}"
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": echo}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


def test_a_judge_that_echoes_the_request_never_puts_the_key_into_its_records(project, monkeypatch, capsys):
    echo = EchoJudge()
    monkeypatch.setenv("TROUPE_JUDGE_URL", echo.url)
    monkeypatch.setenv("TROUPE_JUDGE_KEY", KEY)
    recipe = load_recipe("demo", ["troupe.evaluate.judge_items=1", "troupe.evaluate.judge_repeats=1"])
    cases = [Case([{"role": "user", "content": "[小禾]:雾大吗"}], "雾很大。", {})]
    runs = {name: SystemRun({}, [Reply("雾。", "雾。")], []) for name in ("base", "adapter")}
    try:
        judge.run(recipe, cases, runs, project / "outputs" / "demo" / "eval")
    finally:
        echo.httpd.shutdown()
    raw = (project / "outputs" / "demo" / "eval" / "judge_raw.jsonl").read_text(encoding="utf-8")
    assert "Bearer [TROUPE_JUDGE_KEY]" in raw  # the echo is kept, the key is not
    assert not [name for name, text in text_files(project).items() if KEY in text]
    assert KEY not in "".join(capsys.readouterr())


# ---- every verb that fetches passes the data policy -----------------------------------------------


@pytest.mark.parametrize("verb", ["speakers", "discover", "convert"])
def test_a_mirror_convert_refuses_is_never_fetched_by_any_verb(verb, tmp_path, monkeypatch, capsys):
    mirror = Mirror("127.0.0.2")  # this machine, but not a name the policy lets go without https
    try:
        mirrored_project(tmp_path, mirror.base_url)
        monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
        assert main([verb, "fog"]) == 1
    finally:
        mirror.httpd.shutdown()
    err = capsys.readouterr().err
    assert mirror.requests == [] and "troupe.source.base_url" in err and "is not https" in err


def test_discover_refuses_an_index_that_is_not_an_object_in_one_line(tmp_path, monkeypatch, capsys):
    mirror = Mirror(files={"zh_CN/gamedata/excel/story_review_table.json": b"[1, 2, 3]"})
    try:
        mirrored_project(tmp_path, mirror.base_url)
        monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
        assert main(["discover", "fog"]) == 1
    finally:
        mirror.httpd.shutdown()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "story index" in err and "map event ids" in err


# ---- terminal escapes in untrusted text -----------------------------------------------------------

FAKE_OK = "\x1b[2J\x1b[H\x9b32mOK: recipe is safe\u202e"  # clear the screen, home, C1 CSI green, bidi override
UNPRINTABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def shown_escaped(err: str) -> None:
    """Nothing a terminal would act on, and the fake line is shown as text, on the line that names it."""
    assert not UNPRINTABLE.search(err), repr(err)
    assert "\\x1b[2J\\x1b[H\\x9b32mOK: recipe is safe\\u202e" in err
    assert not [line for line in err.splitlines() if line.lstrip().startswith("OK")]


def test_control_characters_in_key_names_are_shown_escaped(project, capsys):
    recipe = (project / "recipes" / "demo.yaml").read_text(encoding="utf-8")
    key = json.dumps(f"x\n{FAKE_OK}")  # a YAML double-quoted key: \e-style escapes become the characters
    (project / "recipes" / "fog.yaml").write_text(f"{recipe}\n{key}: 1\n", encoding="utf-8")
    assert main(["check", "fog"]) == 1
    shown_escaped(capsys.readouterr().err)


def test_control_characters_in_a_link_list_are_shown_escaped(tmp_path, monkeypatch, capsys):
    mirrored_project(tmp_path, "http://127.0.0.1:9/")
    (tmp_path / "recipes" / "fog.urls.txt").write_text(f"{FAKE_OK}\n", encoding="utf-8")
    monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
    assert main(["convert", "fog"]) == 1
    shown_escaped(capsys.readouterr().err)


def test_control_characters_in_a_shares_file_names_are_shown_escaped(project, tmp_path, capsys):
    document = {"troupe_share": 1, "slug": "fog", "recipe": "troupe: {}\n", "files": {f"recipes/fog/{FAKE_OK}": ""}}
    document["lock"] = {"splits": {}, "sources": [], "counts": {}, "missing": []}
    shared = tmp_path / "fog.recipe.yaml"
    shared.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert main(["import", str(shared)]) == 1
    shown_escaped(capsys.readouterr().err)


# ---- a share import is all or nothing -------------------------------------------------------------


def files_under(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


@pytest.mark.parametrize(
    "files, says",
    [
        (
            {"recipes/fog/a.txt": "x", "recipes/fog/a.txt/b.txt": "y"},
            "recipes/fog/a.txt/b.txt",
        ),  # a file, then a folder
        ({"recipes/fog.urls.txt": "x", f"recipes/fog/{'n' * 300}.txt": "y"}, "File name too long"),
    ],
)
def test_a_share_import_that_fails_halfway_leaves_nothing(project, tmp_path, capsys, files, says):
    document = {"troupe_share": 1, "slug": "fog", "recipe": "troupe: {}\n", "files": files}
    document["lock"] = {"splits": {}, "sources": [], "counts": {}, "missing": []}
    shared = tmp_path / "fog.recipe.yaml"
    shared.write_text(yaml.safe_dump(document), encoding="utf-8")
    before = files_under(project)
    assert main(["import", str(shared)]) == 1
    err = capsys.readouterr().err
    assert files_under(project) == before
    assert len(err.strip().splitlines()) == 1 and says in err and "nothing was written" in err


def test_a_forced_import_replaces_the_slugs_folder_whole(project, tmp_path):
    (project / "recipes" / "fog").mkdir()
    (project / "recipes" / "fog" / "stale.json").write_text("[]", encoding="utf-8")
    (project / "recipes" / "fog.yaml").write_text("troupe: {}\n", encoding="utf-8")
    document = {"troupe_share": 1, "slug": "fog", "recipe": "troupe: {}\n", "files": {"recipes/fog/new.json": "[]"}}
    document["lock"] = {"splits": {}, "sources": [], "counts": {}, "missing": []}
    shared = tmp_path / "fog.recipe.yaml"
    shared.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert main(["import", str(shared)]) == 1  # recipes/fog and recipes/fog.yaml exist
    assert main(["import", str(shared), "--force"]) == 0
    assert sorted(p.name for p in (project / "recipes" / "fog").iterdir()) == ["new.json"]
    assert not [p for p in (project / "recipes").iterdir() if p.name.startswith(".")]  # nothing staged is left


# ---- the server ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
        '{"model": "demo", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
    ],
)
def test_a_lone_surrogate_in_any_request_string_is_a_400(body):
    from fastapi.testclient import TestClient

    from troupe.serve import create_app

    client = TestClient(create_app(SimpleNamespace(name="demo")), raise_server_exceptions=False)
    response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "surrogate" in response.json()["error"]["message"]


def test_a_busy_port_is_one_line_and_nothing_claims_to_serve(project, monkeypatch, capsys):
    import troupe.serve

    monkeypatch.setattr(troupe.serve, "Character", lambda recipe: pytest.fail("the model loaded before the port"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "demo", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert "serving" not in out and len(err.strip().splitlines()) == 1 and f"port {port}" in err
