"""Preflight: before a multi-node run spends GPU time, prove every node would train the same thing.

    troupe preflight kaltsit --nodes 2 --node-rank 0 --master 10.0.0.1:29500    # on node 0
    troupe preflight kaltsit --nodes 2 --node-rank 1 --master 10.0.0.1:29500    # on node 1
    (a multi-node `troupe train` runs it first by itself)

Each node writes its fingerprint (outputs/<slug>/preflight.json): sha256 of the resolved config, the
recipe file, every local file training reads (dataset splits, a first stage's adapter, a chat
template or DeepSpeed file, a local base model folder: by content, not name) and troupe's
own source, plus the versions of troupe, Axolotl, torch, transformers, peft and accelerate, and
NODES × GPUS. torchrun starts one process per node (`python -m troupe.preflight`, c10d rendezvous at
MASTER's port + 1, so it never meets the training rendezvous); the processes exchange fingerprints
over torch.distributed with gloo (CPU is enough), each writes the same verdict
(preflight.result.json), and every node stops with the same lines naming the node and what differs.
"""

import argparse
import json
import shlex
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from troupe import policy, provenance
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, json_text, sha256_bytes, sha256_file
from troupe.layout import DRY_RUN_CONFIG, SPLIT_OF_LIST, is_local_model
from troupe.project import relative_to_root

WAIT_S = 600  # nodes may reach the preflight minutes apart (one converting its dataset, one not)
RUN_ID = "troupe-preflight"
MAX_FINGERPRINT_BYTES = 1 << 20
FIXES = {
    "launch": "run the same command on every machine (same NODES and GPUS)",
    "config": f"give every machine the same ARGS and PARALLEL; compare their {DRY_RUN_CONFIG} (DRY_RUN=1)",
    "recipe": "copy the recipe from node 0 (or check out the same revision)",
    "split": "copy datasets/ from node 0, or rebuild from the same sources (make convert)",
    "adapter": "copy the first stage's adapter from the node that trained it",
    "file": "copy the file from node 0 (or check out the same revision)",
    "model": "copy the model folder from node 0, or build it the same way (make base, troupe tiny-model)",
    "version": "install every machine from the same requirements.lock (make setup)",
    "troupe": "check out the same troupe revision on every machine",
}


# ---- this node's fingerprint ----------------------------------------------------------------------


def fingerprint(recipe, resolved) -> dict:
    """What this node would train, as facts to compare: name → sha256 or version text."""
    config = json.dumps(resolved.config, sort_keys=True, ensure_ascii=False, default=str)
    facts = {
        "launch": f"NODES={resolved.launch.nodes} GPUS={resolved.launch.gpus}",
        "config": sha256_bytes(config.encode()),
        f"recipe {relative_to_root(recipe.path, recipe.root)}": sha256_file(recipe.path),
        **{
            f"{kind} {path}": digest(recipe.root / path, kind)
            for kind, path in training_inputs(resolved.config, recipe.root)
        },
        **{f"version {name}": version for name, version in provenance.versions().items()},
        "troupe source": source_digest(),
    }
    return {"node": resolved.launch.node_rank, "host": socket.gethostname(), "facts": facts}


def training_inputs(config: dict, root: Path) -> list[tuple[str, str]]:
    """Local files the run reads besides the config, compared by content (two nodes can name the same
    path and hold different files): dataset splits, a starting adapter, every key that names a file
    (chat template, DeepSpeed settings) and a local base model or tokenizer folder."""
    inputs = [
        ("split", str(entry["path"]))
        for name in SPLIT_OF_LIST
        for entry in config.get(name) or []
        if isinstance(entry, dict) and entry.get("path")
    ]
    inputs += [("adapter", str(config["lora_model_dir"]))] if config.get("lora_model_dir") else []
    named_files = sorted(policy.TEMPLATE | policy.PARALLEL)
    inputs += [("file", config[key]) for key in named_files if _is_file(config.get(key), root)]
    return inputs + [("model", config[key]) for key in sorted(policy.MODEL) if is_local_model(config.get(key), root)]


def _is_file(value: object, root: Path) -> bool:
    return isinstance(value, str) and bool(value) and "\0" not in value and (root / value).is_file()


def digest(path: Path, kind: str = "file") -> str:
    """sha256 of a file; of an adapter folder, over its adapter files (the weights PEFT loads, not
    the checkpoints beside them); of a model folder, over every file in it but troupe's record
    (which says when it was built: two machines building the same model agree); 'missing' when
    there is nothing."""
    if path.is_file():
        return sha256_file(path)
    pattern = "adapter_*" if kind == "adapter" else "*"
    found = path.glob(pattern) if path.is_dir() else []
    files = sorted(f for f in found if f.is_file() and f.name != provenance.RECORD)
    if not files:
        return "missing"
    return sha256_bytes("".join(f"{f.name} {sha256_file(f)}\n" for f in files).encode())


def source_digest() -> str:
    """troupe's version string does not change with every commit; its code does."""
    top = Path(__file__).resolve().parent.parent
    files = sorted((top / "troupe").rglob("*.py"))
    return sha256_bytes("".join(f"{f.relative_to(top)} {sha256_file(f)}\n" for f in files).encode())


# ---- the comparison (pure) ------------------------------------------------------------------------


def differences(fingerprints: list[dict]) -> list[str]:
    """One line per fact in which a node differs from node 0 (the one at MASTER), naming both nodes,
    the fact, both values and the fix; [] when every node agrees."""
    ranks = [fp.get("node") for fp in fingerprints]
    repeated = sorted({rank for rank in ranks if ranks.count(rank) > 1}, key=str)
    if repeated:
        hosts = ", ".join(_name(fp) for fp in fingerprints if fp.get("node") in repeated)
        return [f"several machines say NODE_RANK={repeated[0]} ({hosts}); fix: number the machines 0..{len(ranks) - 1}"]
    reference, *others = sorted(fingerprints, key=_rank)
    return [line for other in others for line in _compare(reference, other)]


def _compare(reference: dict, other: dict) -> list[str]:
    mine, theirs = reference.get("facts") or {}, other.get("facts") or {}
    return [
        f"{_name(other)} differs from {_name(reference)} in {key}: {_shown(theirs.get(key))} vs "
        f"{_shown(mine.get(key))}; fix: {FIXES.get(key.split()[0], 'make it the same on every machine')}"
        for key in sorted(mine.keys() | theirs.keys())
        if mine.get(key) != theirs.get(key)
    ]


def _rank(fp: dict) -> int:
    """Node 0 first; a fingerprint without a rank (another troupe's format) last."""
    return fp["node"] if isinstance(fp.get("node"), int) else sys.maxsize


def _name(fp: dict) -> str:
    return f"node {fp.get('node')} ({fp.get('host')})"


def _shown(value) -> str:
    """Hashes shortened to 12 characters; a fact one node lacks is 'missing'."""
    text = "missing" if value is None else str(value)
    return f"sha256 {text[:12]}" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


# ---- the exchange (runs under torchrun, one process per node) -------------------------------------


def exchange(payload: bytes) -> list[bytes]:
    """Every node's payload, in rank order. Plain bytes in gloo tensors rather than
    all_gather_object, which unpickles whatever another machine sends."""
    import torch
    import torch.distributed as dist

    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(payload)], dtype=torch.int64))
    longest = max(int(size) for size in sizes)
    if longest > MAX_FINGERPRINT_BYTES:
        raise TroupeError(f"a node sent a {longest}-byte fingerprint (at most {MAX_FINGERPRINT_BYTES})")
    mine = torch.zeros(longest, dtype=torch.uint8)
    mine[: len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
    gathered = [torch.zeros(longest, dtype=torch.uint8) for _ in sizes]
    dist.all_gather(gathered, mine)
    return [tensor[: int(size)].numpy().tobytes() for tensor, size in zip(gathered, sizes, strict=True)]


def main(argv: list[str] | None = None) -> int:
    """The process torchrun starts: exchange fingerprints, write the verdict beside this node's."""
    import torch.distributed as dist

    parser = argparse.ArgumentParser(prog="python -m troupe.preflight")
    parser.add_argument("fingerprint", type=Path, help="this node's preflight.json")
    parser.add_argument("--wait", type=int, default=WAIT_S, help="seconds to wait for the other nodes")
    args = parser.parse_args(argv)
    dist.init_process_group("gloo", timeout=timedelta(seconds=args.wait))
    try:
        nodes = [json.loads(payload) for payload in exchange(args.fingerprint.read_bytes())]
    finally:
        dist.destroy_process_group()
    verdict = {"nodes": nodes, "differences": differences(nodes)}
    atomic_write_text(result_path(args.fingerprint), json_text(verdict))
    return 0


# ---- the step troupe runs on each node ------------------------------------------------------------


def fingerprint_path(recipe, resolved) -> Path:
    return recipe.layout.preflight


def result_path(fingerprint_file: Path) -> Path:
    return fingerprint_file.with_name("preflight.result.json")


def command(recipe, resolved, wait: int = WAIT_S) -> list[str]:
    """The torchrun command of this node's preflight process (run in the project root)."""
    rendezvous = resolved.launch.torchrun_args(RUN_ID, nproc=1, port_offset=1, join_timeout=wait)
    mine = relative_to_root(fingerprint_path(recipe, resolved), recipe.root)
    return ["torchrun", *rendezvous, "-m", "troupe.preflight", mine, "--wait", str(wait)]


def run(recipe, resolved, env: dict, wait: int = WAIT_S) -> None:
    """Write this node's fingerprint, meet the other nodes, and raise TroupeError unless all agree."""
    mine = fingerprint_path(recipe, resolved)
    atomic_write_text(mine, json_text(fingerprint(recipe, resolved)))
    result_path(mine).unlink(missing_ok=True)  # a verdict from an earlier run must not pass for this one
    cmd = command(recipe, resolved, wait)
    print(f"preflight: meeting the other nodes at {resolved.launch.endpoint(1)} (up to {wait} s)", flush=True)
    print(f"$ {shlex.join(cmd)}", flush=True)
    log = mine.with_name("preflight.log")
    _run_bounded(cmd, recipe.root, env, log, wait * 2 + 60)  # rendezvous, then the exchange, each ≤ wait
    if not result_path(mine).is_file():
        raise TroupeError(
            f"preflight: the nodes did not compare fingerprints ({_cause(log)}); every node must run the same "
            f"command and reach {resolved.launch.endpoint(1)} (full log: {relative_to_root(log, recipe.root)})"
        )
    _report(json.loads(result_path(mine).read_text(encoding="utf-8")))


def _run_bounded(cmd: list[str], root: Path, env: dict, log: Path, timeout: float) -> None:
    """torchrun in troupe's own process group, so Ctrl-C (or killing the group) reaches its worker
    too; stopped if it outlives `timeout` (torchrun stops its worker on SIGTERM)."""
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:  # no verdict: the caller reports it
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _cause(log: Path) -> str:
    """The last error line torchrun or the worker logged."""
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:300]


def _report(verdict: dict) -> None:
    nodes = sorted(verdict["nodes"], key=_rank)
    if verdict["differences"]:
        lines = "\n".join(f"  {line}" for line in verdict["differences"])
        raise TroupeError(f"preflight: the nodes would not train the same thing:\n{lines}")
    facts = nodes[0]["facts"]
    inputs = sum(1 for key in facts if key.split()[0] in ("split", "adapter"))
    versions = ", ".join(f"{name} {facts[f'version {name}']}" for name in ("troupe", "axolotl", "torch"))
    print(
        f"preflight: {', '.join(map(_name, nodes))} agree on the config, the recipe, {inputs} input file(s), "
        f"troupe's source and the versions ({versions})"
    )


if __name__ == "__main__":
    sys.exit(main())
