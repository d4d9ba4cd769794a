"""Shared fixtures, one of each kind; tests never write into the repository.

- `project`: a throwaway project root with the repository's recipes, selected via TROUPE_ROOT.
- `demo_project`: a project with the demo's dataset converted, its tiny model (random weights) built and
  its tokenised cache written, built once per run for every worker; read-only. `demo_copy` is a copy
  of it for one module that writes.
- `story_server`: tests/story_server.py's mirror of ArknightsStoryJson, started and stopped for a test.
- `cli`: troupe's CLI in-process (helpers.cli); helpers.cli_process is the subprocess variant.

The slowest modules run first: by their share of slow tests, then as the last run measured them (pytest's cache).
"""

import fcntl
import functools
import os
import shutil
from collections import Counter
from pathlib import Path

import helpers
import pytest
from helpers import REPO
from story_server import StoryServer, serve_demo_stories

# The suite runs on several xdist workers at once: each gets its share of the cores for torch (and for
# every process it starts), instead of every worker spinning threads on all of them (2 workers × 2
# OpenMP threads on 2 cores made the two longest modules 3 to 4 times slower). Set in the workers
# only: they inherit the controller's environment, so a value the controller set would hide theirs.
if os.environ.get("PYTEST_XDIST_WORKER"):
    WORKERS = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // WORKERS)))


MODULE_SECONDS = "troupe/module_seconds"  # pytest's cache: each module's test time in the last run of it
_measured: Counter[str] = Counter()


def pytest_collection_modifyitems(config, items):
    """The longest modules first, so that no worker starts a long one last while the other sits idle
    (xdist hands a worker its next module when it is nearly through one; --dist loadfile keeps a module
    on one worker, and pytest.ini's --no-loadscope-reorder keeps this order): by their share of slow
    tests, then the longest as the last runs measured them (pytest's cache; none on a fresh clone or
    with -p no:cacheprovider). A module's tests keep their order."""
    seconds = config.cache.get(MODULE_SECONDS, {}) if getattr(config, "cache", None) else {}
    tests, slow = Counter(item.path for item in items), Counter()
    slow.update(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (-slow[item.path] / tests[item.path], -seconds.get(item.path.name, 0)))


def pytest_runtest_logreport(report):
    _measured[report.nodeid.split("::")[0].rsplit("/", 1)[-1]] += report.duration  # xdist: every worker's


def pytest_sessionfinish(session):
    cache = getattr(session.config, "cache", None)
    if cache and not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        known = cache.get(MODULE_SECONDS, {})
        cache.set(MODULE_SECONDS, {**known, **{name: round(total, 1) for name, total in _measured.items()}})


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project root in a temporary folder with the repository's recipes, selected via TROUPE_ROOT."""
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.setenv("TROUPE_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory) -> Path:
    """The demo converted, its tiny model (random weights: for the pipeline's plumbing, not for
    learning) and its tokenised cache, in a project root built once for the whole run: the first
    worker to ask builds it, under a lock the others wait on. Read-only: copy it to write."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder, all workers
    root = shared / "demo-project"
    with open(shared / "demo-project.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".built").is_file():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed half-way
            shutil.copytree(REPO / "recipes", root / "recipes")
            for verb in (["convert", "demo"], ["tiny-model", "--untrained"], ["preprocess", "demo"]):
                helpers.cli(*verb, root=root)
            (root / ".built").touch()
    return root


@pytest.fixture(scope="module")
def demo_copy(demo_project, tmp_path_factory) -> Path:
    """A copy of demo_project for one module to write to."""
    root = tmp_path_factory.mktemp("demo") / "project"
    shutil.copytree(demo_project, root, symlinks=True)
    return root


@pytest.fixture
def story_server(tmp_path):
    """Start a StoryServer: `story_server()` serves the demo's stories (`replace`: one phrase changed
    upstream), `story_server(folder, latency=…)` a folder of its own; every server stops after the test."""
    servers = []

    def start(folder: Path | None = None, replace: tuple[str, str] = ("", ""), **options) -> StoryServer:
        folder = folder or serve_demo_stories(tmp_path / f"served{len(servers)}", replace)
        servers.append(StoryServer(folder, **options).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def cli(project):
    """troupe's CLI in-process against `project`: cli("check", "demo") → .returncode, .stdout, .stderr."""
    return functools.partial(helpers.cli, root=project, check=False)
