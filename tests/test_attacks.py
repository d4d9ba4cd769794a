"""The attack suite: a shared recipe is untrusted input (SECURITY.md). Each test is one attack, built
as a real share file or recipe in a temporary project and run through the real CLI; each asserts that
the refusal names the key or file, that nothing was written outside the slug, that no code ran (a
marker file the attacker's code would create) and that no module was imported."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
import yaml
from helpers import REPO, as_a_terminal_job, cli_process, run_make
from story_server import DEMO_STORIES, READER, serve_demo_stories

from troupe.errors import TroupeError
from troupe.evaluation.judge import Judge


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in-process against the project root (helpers.cli)."""
    return helpers.cli(*args, root=root, check=False)


def cli_in_project(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m troupe …` in the project root, as a user runs it: the root is on sys.path, so an
    attacker's module placed there would be importable (and a module imported by this test process
    before could not hide an import)."""
    return cli_process(*args, root=root, check=False, cwd=root, timeout=300)


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """The refusal's text, after checking it is one: non-zero exit, no traceback, every word named."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, f"{word!r} not in:\n{output}"
    return output


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def demo_recipe(**changes) -> str:
    """recipes/demo.yaml with top-level keys changed (a value of None removes the key)."""
    data = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def demo_dataset_entry(**changes) -> list[dict]:
    data = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8"))
    return [{**data["datasets"][0], **changes}]


def share_file(project: Path, slug: str, recipe: str, files: dict | None = None, lock: dict | None = None) -> Path:
    """A share file as a stranger sends it, in a folder outside the project."""
    document = {
        "troupe_share": 1,
        "slug": slug,
        "recipe": recipe,
        "files": files or {},
        "lock": lock if lock is not None else {"splits": {}, "sources": [], "counts": {}, "missing": []},
    }
    inbox = project.with_name(f"{project.name}-inbox")
    inbox.mkdir(exist_ok=True)
    path = inbox / f"{slug}.recipe.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def marker_code(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('code ran')\n"


# ---- code execution -------------------------------------------------------------------------------


def test_a_share_carrying_python_is_refused_and_never_runs(project, tmp_path):
    marker = tmp_path / "pwned"
    recipe = demo_recipe(optimizer="adamw_anyprecision", torchdistx_path="recipes/evil_lib")
    shared = share_file(project, "evil", recipe, files={"recipes/evil_lib/torchdistx/__init__.py": marker_code(marker)})
    before = files_under(project)
    refused(cli_in_project(project, "import", shared), "torchdistx_path", "recipes/evil_lib/torchdistx/__init__.py")
    refused(cli_in_project(project, "import", shared, "--allow-unsafe"), "recipes/evil_lib/torchdistx/__init__.py")
    assert files_under(project) == before

    # The same files put in place by hand: every pipeline step refuses before Axolotl starts.
    (project / "recipes" / "evil.yaml").write_text(recipe, encoding="utf-8")
    library = project / "recipes" / "evil_lib" / "torchdistx"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(marker_code(marker), encoding="utf-8")
    refused(cli_in_project(project, "train", "evil", "max_steps=1"), "torchdistx_path")
    assert not marker.exists()


@pytest.mark.parametrize(
    "name",
    [
        "recipes/demo.yaml",  # another recipe
        "recipes/__init__.py",
        "recipes/kaltsit.lock.json",  # another recipe's lock
        "recipes/demo/level_demo_01.json",  # another recipe's story
        "recipes/evil.lock.json",  # its own lock comes from `lock:`, never from the file map
        "recipes/evil/../demo.yaml",
        "recipes/evil/run.sh",
        "recipes/evil.yaml",  # its own recipe comes from `recipe:`
    ],
)
def test_a_share_writes_only_its_own_slug(project, tmp_path, name):
    shared = share_file(project, "evil", demo_recipe(), files={name: "trust_remote_code: true\n"})
    before = files_under(project)
    for extra in ([], ["--force"], ["--force", "--allow-unsafe"]):
        refused(cli(project, "import", shared, *extra), name)
    assert files_under(project) == before


def test_a_share_may_replace_its_own_slug_only_with_force(project, tmp_path):
    shared = share_file(project, "demo", demo_recipe(lora_r=4))
    before = files_under(project)
    refused(cli(project, "import", shared), "recipes/demo.yaml exists", "FORCE=1")
    assert files_under(project) == before
    assert cli(project, "import", shared, "--force").returncode == 0
    assert yaml.safe_load((project / "recipes" / "demo.yaml").read_text(encoding="utf-8"))["lora_r"] == 4
    changed = {name for name, data in files_under(project).items() if before.get(name) != data}
    assert changed == {"recipes/demo.yaml", "recipes/demo.lock.json"}


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"plugins": ["evilmod.Plugin"]}, "plugins"),
        ({"datasets": demo_dataset_entry(type="evilmod.load")}, "datasets[0].type"),
        ({"trainer_cls": "evilmod.Trainer"}, "trainer_cls"),
        ({"trl": {"reward_funcs": ["evilmod.reward"]}}, "trl"),
    ],
)
def test_check_imports_nothing_a_recipe_names(project, tmp_path, changes, key):
    marker = tmp_path / "imported"
    (project / "evilmod.py").write_text(marker_code(marker), encoding="utf-8")
    (project / "recipes" / "evil.yaml").write_text(demo_recipe(**changes), encoding="utf-8")
    for verb in ("check", "convert"):
        refused(cli_in_project(project, verb, "evil"), key, "ALLOW_UNSAFE")
    assert not marker.exists()


# ---- keys a denylist misses ---------------------------------------------------------------------

MISSED = [
    ({"datasets": demo_dataset_entry(chat_template_jinja="/etc/hostname")}, "datasets[0].chat_template_jinja"),
    ({"datasets": demo_dataset_entry(trust_remote_code=True)}, "datasets[0].trust_remote_code"),
    ({"wandb_log_model": "checkpoint", "wandb_project": "x"}, "wandb_log_model"),
    ({"mlflow_tracking_uri": "https://mlflow.example.org", "hf_mlflow_log_artifacts": True}, "hf_mlflow_log_artifacts"),
    ({"use_comet": True, "comet_project_name": "x"}, "use_comet"),
    ({"use_kernels": True}, "use_kernels"),
    ({"attn_implementation": "kernels-community/flash-attn"}, "attn_implementation"),
    ({"overrides_of_model_kwargs": {"trust_remote_code": True}}, "overrides_of_model_kwargs"),
    ({"model_kwargs": {"trust_remote_code": True}}, "model_kwargs"),
    ({"deepspeed": {"zero_optimization": {"offload_param": {"nvme_path": "/"}}}}, "deepspeed"),
    ({"deepspeed": "recipes/demo/zero.json"}, "deepspeed"),
    ({"tokenizer_config": "https://evil.example.org/tok"}, "tokenizer_config"),
    ({"base_model": "https://evil.example.org/model"}, "base_model"),
    ({"output_dir": "outputs/kaltsit"}, "output_dir"),
    ({"dataset_prepared_path": "datasets/kaltsit/prepared"}, "dataset_prepared_path"),
    ({"resume_from_checkpoint": "/tmp/checkpoint"}, "resume_from_checkpoint"),
    ({"hub_revision": "main", "hub_model_id": "me/x"}, "hub_model_id"),
    ({"some_key_axolotl_adds_next_year": True}, "some_key_axolotl_adds_next_year"),
]


@pytest.mark.parametrize("changes, key", MISSED, ids=[key for _, key in MISSED])
def test_keys_a_denylist_missed_are_refused_by_check_and_import(project, tmp_path, changes, key):
    recipe = demo_recipe(**changes)
    (project / "recipes" / "evil.yaml").write_text(recipe, encoding="utf-8")
    refused(cli(project, "check", "evil"), key)
    (project / "recipes" / "evil.yaml").unlink()
    before = files_under(project)
    refused(cli(project, "import", share_file(project, "evil", recipe)), key)
    assert files_under(project) == before


# ---- downloads ----------------------------------------------------------------------------------


def linked_recipe(root: Path, slug: str, base_url: str, stories=DEMO_STORIES, **source) -> None:
    """recipes/<slug>.yaml: the demo recipe downloading its stories from `base_url`."""
    data = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8"))
    data["troupe"]["source"] = {"converter": "arknights", "base_url": base_url, "timeout": 2, **source}
    (root / "recipes" / f"{slug}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (root / "recipes" / f"{slug}.urls.txt").write_text("".join(f"{READER}{s}\n" for s in stories), encoding="utf-8")


def story_path(story: str) -> str:
    return f"zh_CN/gamedata/story/{story}.json"


def cached_stories(root: Path) -> list[Path]:
    return sorted((root / "datasets" / ".cache").rglob("*.json"))


def test_two_mirrors_never_share_cached_stories(project, story_server):
    first, second = story_server(), story_server(replace=("那就用我的。", "那就听我的，把钥匙交出来。"))
    linked_recipe(project, "honest", first.base_url)
    linked_recipe(project, "mirror", second.base_url)
    assert cli(project, "convert", "mirror").returncode == 0
    assert cli(project, "convert", "honest").returncode == 0
    assert (first.total_requests, second.total_requests) == (3, 3)
    honest_text = "".join((project / "datasets" / "honest" / f"{s}.jsonl").read_text() for s in ("train", "test"))
    mirror_text = "".join((project / "datasets" / "mirror" / f"{s}.jsonl").read_text() for s in ("train", "test"))
    assert "把钥匙交出来" in mirror_text and "把钥匙交出来" not in honest_text


@pytest.mark.parametrize(
    "fault, source, words, seconds",
    [
        ("wait_an_hour", {}, ["Retry-After", "3600", "over the 60 s"], 10),
        ("dribble", {"deadline": 2}, ["2 s deadline"], 10),
        ("huge", {"max_bytes": 1_000_000}, ["more than 1000000 bytes"], 20),
    ],
)
def test_a_hostile_server_costs_one_request_and_bounded_time(project, story_server, fault, source, words, seconds):
    server = story_server()
    linked_recipe(project, "ark", server.base_url, **source)
    server.inject(story_path("obt/main/level_demo_02"), fault)
    started = time.monotonic()
    refused(cli(project, "convert", "ark"), "recipes/ark.urls.txt:2", *words)
    assert time.monotonic() - started < seconds
    assert server.requests[story_path("obt/main/level_demo_02")] == 1
    assert not [p for p in cached_stories(project) if p.name == "level_demo_02.json"]


def test_a_redirect_to_another_origin_is_refused(project, story_server):
    other = story_server()
    server = story_server(redirect_to=other.base_url)
    linked_recipe(project, "ark", server.base_url)
    server.inject(story_path("obt/main/level_demo_02"), "redirect")
    refused(cli(project, "convert", "ark"), "redirect", other.base_url.rstrip("/"))
    assert other.total_requests == 0


def test_a_failing_link_costs_exactly_its_attempts(project, story_server):
    server = story_server()
    linked_recipe(project, "ark", server.base_url, retries=3)
    server.inject(story_path("obt/main/level_demo_02"), *["500"] * 20)
    refused(cli(project, "convert", "ark"), "HTTP 500")
    assert server.requests[story_path("obt/main/level_demo_02")] == 3


@pytest.mark.slow
def test_ctrl_c_stops_the_pool_within_seconds_and_the_cache_stays_whole(project, tmp_path, story_server):
    folder = serve_demo_stories(tmp_path / "served")
    stories = {}
    for n in range(40):  # 40 copies of one story, two seconds per answer, four workers
        stories[f"obt/main/copy_{n:02d}"] = None
        copy = folder / story_path(f"obt/main/copy_{n:02d}")
        copy.write_bytes((folder / story_path("obt/main/level_demo_01")).read_bytes())
    server = story_server(folder, latency=2.0)
    linked_recipe(project, "ark", server.base_url, stories=stories, workers=4, timeout=30)
    env = {**os.environ, "TROUPE_ROOT": str(project)}
    process = subprocess.Popen(
        [sys.executable, "-m", "troupe", "convert", "ark"],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_a_terminal_job,
    )
    deadline = time.monotonic() + 60
    while server.total_requests < 8 and time.monotonic() < deadline:  # a second round is in flight
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - stopped < 5, "Ctrl-C waited for the pool"
    assert process.returncode == 130 and "Traceback" not in err
    cached = cached_stories(project)
    assert 4 <= len(cached) < 40
    for path in cached:
        json.loads(path.read_text(encoding="utf-8"))


# ---- make, the lock, files ----------------------------------------------------------------------


MAKE_TARGETS = {
    "CHARACTER": ["check"],
    "ARGS": ["check", "CHARACTER=demo"],
    "FILE": ["import"],
    "FROM": ["new", "CHARACTER=x"],
}


@pytest.mark.parametrize("variable", sorted(MAKE_TARGETS))
@pytest.mark.slow
def test_make_never_expands_a_variable(project, tmp_path, variable):
    marker = tmp_path / "expanded"
    target, *others = MAKE_TARGETS[variable]
    value = f"$(shell touch {marker})demo`touch {marker}`$$(touch {marker})"
    done = run_make("-s", target, *others, f"{variable}={value}", root=project, timeout=300)
    assert not marker.exists(), done.stdout + done.stderr


@pytest.mark.parametrize(
    "lock, words",
    [
        ({"splits": {"train": {"samples": "many"}}}, ["lock", "splits"]),
        ([], ["lock"]),
        ({"splits": {}, "sources": [{"path": "/etc/passwd"}]}, ["lock", "sources"]),
    ],
)
def test_a_malformed_lock_is_refused_at_import_and_by_verify(project, tmp_path, lock, words):
    before = files_under(project)
    refused(cli(project, "import", share_file(project, "evil", demo_recipe(), lock=lock)), *words)
    assert files_under(project) == before
    (project / "recipes" / "demo.lock.json").write_text(json.dumps(lock), encoding="utf-8")
    refused(cli(project, "verify", "demo"), "demo.lock.json")


@pytest.mark.parametrize("path", ["/dev/zero", "a_folder", "missing.recipe.yaml"])
def test_importing_what_is_not_a_share_file_is_one_error(project, tmp_path, path):
    (tmp_path / "a_folder").mkdir()
    target = path if path.startswith("/") else tmp_path / path
    refused(cli_process("import", target, root=project, check=False, timeout=30), str(target))  # /dev/zero: bounded


def test_a_large_shared_dataset_imports(project, tmp_path):
    hashes = [f"{n:016x}" for n in range(150_000)]  # a 150k-sample split: a lock of ~3.5 MB
    lock = {"splits": {"train": {"samples": len(hashes), "sha256": "0" * 64, "sample_hashes": hashes}}}
    shared = share_file(project, "big", demo_recipe(), lock={**lock, "sources": [], "counts": {}, "missing": []})
    assert shared.stat().st_size > 2_000_000
    done = cli(project, "import", shared)
    assert done.returncode == 0, done.stderr


def test_a_source_glob_never_follows_a_link_out_of_the_project(project, tmp_path):
    outside = project.with_name(f"{project.name}-outside")
    outside.mkdir()
    (outside / "stolen.json").write_bytes((REPO / "recipes" / "demo" / "level_demo_01.json").read_bytes())
    (project / "recipes" / "demo" / "linked").symlink_to(outside)
    refused(cli(project, "convert", "demo", "troupe.source.files=[recipes/demo/**/*.json]"), "leads outside")
    assert not (project / "datasets" / "demo").exists()


def test_a_judge_key_with_a_control_character_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("TROUPE_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TROUPE_JUDGE_KEY", "sk-secret-0123\r")
    with pytest.raises(TroupeError, match="TROUPE_JUDGE_KEY") as raised:
        Judge.from_env()
    assert "sk-secret" not in str(raised.value)


def test_duplicate_yaml_keys_are_refused(project):
    path = project / "recipes" / "demo.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nlora_r: 64\n", encoding="utf-8")
    refused(cli(project, "check", "demo"), "lora_r", "twice")


def test_a_recipe_outside_recipes_cannot_write_a_slugs_data(project, tmp_path):
    stranger = tmp_path / "downloads" / "demo.yaml"
    stranger.parent.mkdir()
    stranger.write_text(demo_recipe(lora_r=4), encoding="utf-8")
    refused(cli(project, "convert", stranger), "recipes/")
    assert not (project / "datasets" / "demo").exists()
