"""troupe.preflight: the fingerprint of what a node would train, and the pure comparison of nodes.
(The exchange between two torchrun agents runs in test_multinode.py.)"""

import json
import socket
import time

import pytest

from troupe.errors import TroupeError
from troupe.launch import Launch
from troupe.preflight import differences, fingerprint, run
from troupe.recipe import load_recipe
from troupe.render import resolve, run_env

SPLIT = "split datasets/demo/train.jsonl"


def node(rank: int, host: str, **facts) -> dict:
    base = {"config": "c" * 64, SPLIT: "a" * 64, "version axolotl": "0.19.0"}
    return {"node": rank, "host": host, "facts": {**base, **facts}}


def test_nodes_that_agree_have_no_differences():
    assert differences([node(0, "a"), node(1, "b"), node(2, "c")]) == []


def test_a_changed_split_names_the_node_the_split_both_hashes_and_the_fix():
    (line,) = differences([node(1, "gpu-b", **{SPLIT: "b" * 64}), node(0, "gpu-a")])
    assert line.startswith(f"node 1 (gpu-b) differs from node 0 (gpu-a) in {SPLIT}: ")
    assert "sha256 bbbbbbbbbbbb vs sha256 aaaaaaaaaaaa" in line
    assert "fix: copy datasets/ from node 0" in line


def test_versions_are_shown_as_they_are_and_a_fact_one_node_lacks_is_missing():
    lines = differences([node(0, "a"), node(1, "b", **{"version axolotl": "0.18.0", "adapter outputs/x": "d" * 64})])
    assert lines == [
        "node 1 (b) differs from node 0 (a) in adapter outputs/x: sha256 dddddddddddd vs missing; "
        "fix: copy the first stage's adapter from the node that trained it",
        "node 1 (b) differs from node 0 (a) in version axolotl: 0.18.0 vs 0.19.0; "
        "fix: install every machine from the same requirements.lock (make setup)",
    ]


def test_every_node_is_compared_with_node_0():
    lines = differences([node(0, "a"), node(1, "b"), node(2, "c", config="e" * 64)])
    assert len(lines) == 1 and lines[0].startswith("node 2 (c) differs from node 0 (a) in config")


def test_two_machines_with_the_same_node_rank_are_named():
    assert differences([node(0, "a"), node(0, "b")]) == [
        "several machines say NODE_RANK=0 (node 0 (a), node 0 (b)); fix: number the machines 0..1"
    ]


@pytest.fixture
def demo(project):
    """The demo recipe with its splits written (content only matters for the hashes)."""
    for split in ("train", "validation"):
        path = project / "datasets" / "demo" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"split": "{split}"}}\n', encoding="utf-8")
    return load_recipe("demo")


NODE_1 = Launch(gpus=1, nodes=2, node_rank=1, host="127.0.0.1", port=29500)


def facts_of(recipe) -> dict:
    return fingerprint(recipe, resolve(recipe, cuda=False, launch=NODE_1))


def test_the_fingerprint_covers_config_recipe_splits_versions_and_the_launch(demo):
    found = facts_of(demo)
    assert found["node"] == 1 and found["host"] == socket.gethostname()
    facts = found["facts"]
    assert facts["launch"] == "NODES=2 GPUS=1" and facts["version axolotl"] == "0.19.0"
    assert {"config", "recipe recipes/demo.yaml", SPLIT, "split datasets/demo/validation.jsonl"} <= set(facts)
    assert {"version troupe", "version torch", "troupe source"} <= set(facts)
    assert json.loads(json.dumps(found)) == found  # what crosses the network is plain JSON


def test_the_fingerprint_follows_every_input(demo, project):
    before = facts_of(demo)["facts"]
    (project / "datasets" / "demo" / "train.jsonl").write_text('{"split": "changed"}\n', encoding="utf-8")
    assert [k for k, v in facts_of(demo)["facts"].items() if before[k] != v] == [SPLIT]
    assert facts_of(load_recipe("demo", ["learning_rate=0.1"]))["facts"]["config"] != before["config"]
    adapter = project / "outputs" / "first"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    (adapter / "checkpoint-2").mkdir()  # checkpoints beside the adapter are not what training loads
    staged = facts_of(load_recipe("demo", ["lora_model_dir=outputs/first"]))["facts"]
    assert len(staged["adapter outputs/first"]) == 64


def test_files_the_config_names_are_compared_by_content(demo, project):
    """Two nodes that name the same template file or base model folder but hold different files differ."""
    (project / "recipes" / "turns.jinja").write_text("{{ messages }}", encoding="utf-8")
    model = project / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "tokenizer.json").write_text("{}", encoding="utf-8")
    recipe = load_recipe("demo", ["chat_template_jinja=recipes/turns.jinja"])
    before = facts_of(recipe)["facts"]
    (project / "recipes" / "turns.jinja").write_text("{{ messages | reverse }}", encoding="utf-8")
    (model / "tokenizer.json").write_text('{"changed": 1}', encoding="utf-8")
    after = facts_of(recipe)["facts"]
    assert [k for k in before if before[k] != after[k]] == ["file recipes/turns.jinja", "model models/tiny"]


def test_a_node_alone_stops_after_the_wait_with_the_cause(demo, project):
    """Nobody else comes: torchrun's rendezvous gives up after `wait` seconds, and so does troupe."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1] - 1  # the preflight meets at port + 1: this free one
    launch = Launch(gpus=1, nodes=2, node_rank=0, host="127.0.0.1", port=port)
    resolved = resolve(demo, cuda=False, launch=launch)
    started = time.perf_counter()
    with pytest.raises(TroupeError, match="did not compare fingerprints.*RendezvousTimeoutError"):
        run(demo, resolved, run_env(resolved.config, project), wait=3)
    assert time.perf_counter() - started < 60
    assert (project / "outputs" / "demo" / "preflight.json").is_file()
    assert not (project / "outputs" / "demo" / "preflight.result.json").exists()
