"""Two "machines" on 127.0.0.1: two project copies, each with its own torchrun agent (`--nnodes 2`,
one process each, gloo, CPU), meeting through the c10d rendezvous exactly as two real nodes would.

- one node's dataset changed: `troupe preflight` fails on both nodes, naming the node and the split;
- identical copies: `troupe train` passes its preflight on both nodes, then Axolotl trains 2 steps
  data-parallel (each node reads half the data; gradients are averaged over gloo, so both nodes end
  with the same adapter).

Every wait is bounded and every process started here is killed at the end, whatever happens.
"""

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
STATE = "trainer_state.json"  # kept beside the promoted adapter, from the last checkpoint
LIMIT_S = 240  # per pair of nodes; the training pair takes 60 to 130 s on 2 shared cores


@pytest.fixture
def nodes(demo_project, tmp_path):
    """Two separate copies of the demo project (dataset, tiny model and tokenised cache: a node without
    the cache would tokenise before its preflight; here both have it, to keep the test short)."""
    copies = [tmp_path / f"node{rank}" for rank in (0, 1)]
    for copy in copies:
        shutil.copytree(demo_project, copy, ignore=shutil.ignore_patterns("outputs"))
    return copies


def free_port_pair() -> int:
    """A port whose successor is free too (training meets at MASTER's port, the preflight at +1)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with contextlib.suppress(OSError):
                second.bind(("127.0.0.1", port + 1))
                return port
    raise RuntimeError("no two consecutive free ports")


def on_both_nodes(copies, verb: str, *extra: str) -> list[subprocess.CompletedProcess]:
    """`troupe <verb> demo … --nodes 2 --node-rank r --master 127.0.0.1:port` in each copy, at once."""
    master = f"127.0.0.1:{free_port_pair()}"
    procs = []
    try:
        for rank, root in enumerate(copies):
            args = [verb, "demo", *extra, "--nodes", "2", "--node-rank", str(rank), "--master", master, "--wait", "90"]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "troupe", *args],
                    env={**os.environ, "TROUPE_ROOT": str(root)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # its own process group: torchrun and workers die with it below
                )
            )
        outputs = [proc.communicate(timeout=LIMIT_S) for proc in procs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return [
        subprocess.CompletedProcess(p.args, p.returncode, out, err)
        for p, (out, err) in zip(procs, outputs, strict=True)
    ]


def test_a_node_with_a_changed_split_stops_both_nodes_naming_it(nodes):
    split = nodes[1] / "datasets" / "demo" / "train.jsonl"
    split.write_text("".join(split.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    for done in on_both_nodes(nodes, "preflight"):
        assert done.returncode == 1, done.stdout + done.stderr
        assert "node 1 (" in done.stderr and "differs from node 0 (" in done.stderr
        assert "datasets/demo/train.jsonl" in done.stderr  # the split that differs
        assert done.stderr.count("differs from") == 1  # only the split: the rest is identical


def test_identical_nodes_agree_then_train_two_steps_together(nodes):
    runs = on_both_nodes(nodes, "train", "max_steps=2")
    for done in runs:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert (
            "preflight: node 0 (" in done.stdout and "agree on the config, the recipe, 2 input file(s)" in done.stdout
        )
        assert "--launcher torchrun -- --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d" in done.stdout
    node0, node1 = (root / "outputs" / "demo" / "adapter" for root in nodes)
    # the trainer state comes from global rank 0 only; on one host c10d ranks the agents by process id
    (state_file,) = [path for path in (node0 / STATE, node1 / STATE) if path.is_file()]
    state = json.loads(state_file.read_text(encoding="utf-8"))
    # each node reads its half: a step takes micro_batch_size samples on each of the 2 nodes
    samples = json.loads((nodes[0] / "datasets" / "demo" / "manifest.json").read_text())["counts"]["train"]
    recipe = yaml.safe_load((nodes[0] / "recipes" / "demo.yaml").read_text(encoding="utf-8"))
    per_step = recipe["micro_batch_size"] * recipe["gradient_accumulation_steps"] * 2
    steps_per_epoch = math.ceil(samples / per_step)  # the demo: 207 / (8 × 1 × 2) → 13 (26 on one node)
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(2 / steps_per_epoch)
    weights = [load_file(folder / "adapter_model.safetensors") for folder in (node0, node1)]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])  # gradients averaged across nodes
    assert any(weights[0][k].abs().sum() > 0 for k in weights[0] if "lora_B" in k)  # and it did train
