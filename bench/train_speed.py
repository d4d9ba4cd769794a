"""Training speed: the seed's setup against the kaltsit recipe run by troupe through Axolotl, on the
same machine, the same kaltsit-shaped data and the same samples.

    .venv/bin/python bench/train_speed.py                       # on a GPU: Gemma-4-E4B shape, 3,350 samples, 2 epochs
    .venv/bin/python bench/train_speed.py --shape tiny --samples 64 --epochs 1    # the harness, checked on CPU

(a) baseline, seed 000's setup: TRL SFTTrainer + PEFT LoRA (r 8, all-linear), no packing, eager
    attention, micro batch 2 × grad accum 8, bf16, completion-only loss;
(b) troupe: recipes/kaltsit.yaml rendered by troupe (overrides below) and run by `axolotl train`
    with the fastest settings it has for this model: sample packing, sdpa attention, Axolotl's LoRA
    kernels, a fused optimizer, a large micro batch, no gradient checkpointing.
The model is random-initialised with the real architecture and published size of the recipe's base
model (no hub: the config is built here; the output names the shape), the data synthetic with the
kaltsit dataset's shape (its system prompt and template, 3 context lines, replies of ~23 characters)
and a character-level tokenizer padded to the real vocabulary size. Both runs time the training loop
only (Trainer's train_runtime). Reported per run: samples/s, trained tokens/s, MFU (6 × active
parameters × tokens / time / peak bf16 FLOP/s), peak GPU memory and the final training loss; then
the troupe/baseline ratio. Written to bench/results/train_speed.{json,md}.
"""

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from troupe.layout import Layout  # noqa: E402

# Gemma-4-E4B text decoder as published (42 layers: 5 sliding + 1 global, ×7; 18 layers share KV),
# vision and audio towers as published; the tiny shape is troupe's test model.
E4B_VOCAB = 262_144
E4B = {
    "text": dict(
        hidden_size=2560,
        intermediate_size=10_240,
        num_hidden_layers=42,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=256,
        global_head_dim=512,
        hidden_size_per_layer_input=256,
        sliding_window=512,
        num_kv_shared_layers=18,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 7,
        max_position_embeddings=131_072,
    ),
    "vision": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=16,
        num_attention_heads=12,
        num_key_value_heads=12,
        head_dim=64,
        patch_size=16,
    ),
    "audio": dict(hidden_size=1024, num_hidden_layers=12, num_attention_heads=8),
}
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
FAST = [
    "sample_packing=true",
    "eval_sample_packing=false",
    "micro_batch_size=16",
    "gradient_accumulation_steps=1",
    "gradient_checkpointing=false",
    "attn_implementation=sdpa",
    "optimizer=adamw_torch_fused",
    "lora_mlp_kernel=true",
    "lora_qkv_kernel=true",
    "lora_o_kernel=true",
    "eval_steps=null",
    "eval_strategy='no'",
    "save_steps=100000",
    "load_best_model_at_end=false",
    "test_datasets=null",
    "val_set_size=0",
]
CHARS = "雾港河面药潮灯下医生病人船长信到了说下去我知道你他她们这那是不在有一个来去好的了吗呢吧罗德岛博士凯尔希阿米娅"


# ---- data, tokenizer, model --------------------------------------------------------------------


def kaltsit_samples(count: int, seed: int = 0) -> list[dict]:
    """Samples shaped like the kaltsit dataset: its prompts, 3 context lines, replies of mean ~23 characters."""
    from troupe.chat import conversation, user_turn
    from troupe.recipe import load_recipe

    rng, spec = random.Random(seed), load_recipe("kaltsit", root=REPO).spec

    def text(mean: int) -> str:
        return "".join(rng.choice(CHARS) for _ in range(max(2, int(rng.expovariate(1 / mean))))) + "。"

    samples = []
    for _ in range(count):
        context = "\n".join(f"[{rng.choice(['博士', '阿米娅', '凯尔希'])}]:{text(25)}" for _ in range(3))
        user = user_turn(spec.prompt.user_template, context, spec.character.name)
        samples.append(
            {"messages": conversation(spec.prompt.system, [user, {"role": "assistant", "content": text(22)}])}
        )
    return samples


def build_model(folder: Path, shape: str, samples: list[dict]) -> dict:
    """Tokenizer + random-initialised Gemma 4 of the chosen shape; returns what was built."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    from troupe.demo.tiny import BASE_TOKENS, GEMMA4_TOKENS, build_tiny_model, gemma4_model, wrap_tokenizer

    if shape == "tiny":  # Axolotl cannot load Gemma 4's processor without a CUDA torchvision: the demo's model
        build_tiny_model(folder, [m["content"] for s in samples for m in s["messages"]], arch="llama")
        return {
            "shape": "tiny Llama-architecture test model (harness check only)",
            "overrides": ["lora_target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]"],
        }
    from axolotl.utils.chat_templates import get_chat_template

    chars = sorted({ch for s in samples for m in s["messages"] for ch in m["content"]})
    special = [*BASE_TOKENS, *GEMMA4_TOKENS]
    vocab = {tok: i for i, tok in enumerate(special + chars)}
    vocab.update({f"<unused{i}>": i for i in range(len(vocab), E4B_VOCAB)})  # Gemma's 262,144 entries
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character, like Gemma for CJK
    tokenizer = wrap_tokenizer(core, special, get_chat_template("gemma4"))
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = gemma4_model(tokenizer, E4B).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {
        "shape": "google/gemma-4-E4B-it as published: "
        + json.dumps(E4B["text"] | {"layer_types": "5×sliding+1×global ×7"})
    }


def active_parameters(model_dir: Path) -> int:
    """Parameters a token passes through: the language model's decoder layers and the output head
    (per-layer embeddings are lookups, the vision and audio towers idle on text)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    text = "language_model" if any("language_model" in n for n, _ in model.named_parameters()) else "model."
    layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and text in n)
    head = model.get_output_embeddings().weight.numel()
    return layers + head


# ---- the two runs --------------------------------------------------------------------------------


def run_baseline(work: Path, epochs: int) -> dict:
    """Seed 000: TRL SFTTrainer + PEFT, no packing, eager attention, 2 × 8, bf16 (in this process)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    cuda = torch.cuda.is_available()
    samples = [json.loads(line) for line in (work / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    data = Dataset.from_list([{"prompt": s["messages"][:-1], "completion": s["messages"][-1:]} for s in samples])
    tokenizer = AutoTokenizer.from_pretrained(work / "model")
    model = AutoModelForCausalLM.from_pretrained(
        work / "model", attn_implementation="eager", dtype=torch.bfloat16 if cuda else torch.float32
    )
    args = SFTConfig(
        output_dir=str(work / "baseline"),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=8,
        num_train_epochs=epochs,
        learning_rate=5e-5,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        max_length=512,
        packing=False,
        completion_only_loss=True,
        bf16=cuda,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=42,
        use_cpu=not cuda,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear"),
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * epochs
    output = trainer.train()
    return {
        "run": "baseline (seed 000: TRL SFTTrainer, no packing, eager, 2 × 8)",
        "samples": len(samples) * epochs,
        "tokens": tokens,
        "seconds": output.metrics["train_runtime"],
        "train_loss": output.metrics["train_loss"],
        "final_loss": _last_loss(trainer.state.log_history),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }


def run_troupe(work: Path, epochs: int, extra: list[str]) -> dict:
    """recipes/kaltsit.yaml rendered by troupe with the fast settings, trained by `axolotl train`."""
    from troupe.engine import run_axolotl
    from troupe.recipe import load_recipe
    from troupe.render import resolve, run_env, write_resolved
    from troupe.validate import check

    data = [
        "base_model=model",
        "datasets.0.path=train.jsonl",
        f"num_epochs={epochs}",
        "max_steps=null",
        "output_dir=troupe_out",
        "dataset_prepared_path=prepared",
    ]
    recipe = load_recipe(str(Layout(work, "kaltsit").recipe), [*data, *FAST, *extra], root=work)
    resolved = resolve(recipe)
    if problems := check(recipe, resolved, need_data=False):
        raise SystemExit("the rendered recipe does not pass troupe check:\n" + "\n".join(map(str, problems)))
    path = write_resolved(recipe, resolved)
    env = run_env(resolved.config, work)
    run_axolotl("preprocess", path, work, env, ["--no-download"])  # not timed: the seed tokenised on the fly
    run_axolotl("train", path, work, env, resolved.launcher_args())
    log = _logged_dicts(work / "troupe_out" / "debug.log")
    summary = next(e for e in reversed(log) if "train_runtime" in e)
    samples = len((work / "train.jsonl").read_text(encoding="utf-8").splitlines())
    return {
        "run": "troupe (kaltsit recipe via Axolotl: packing, sdpa, LoRA kernels, fused AdamW, micro 16)",
        "samples": samples * epochs,
        "tokens": _prepared_tokens(work / "prepared") * epochs,
        "seconds": float(summary["train_runtime"]),
        "train_loss": float(summary["train_loss"]),
        "final_loss": _last_loss(log),
        "peak_memory_gib": max(
            (float(e["memory/max_allocated (GiB)"]) for e in log if "memory/max_allocated (GiB)" in e), default=None
        ),
        "settings": FAST,
        "cpu_note": resolved.notes,
    }


def _logged_dicts(path: Path) -> list[dict]:
    """The Trainer's metric dicts ({'loss': …}, {'train_runtime': …}) as Axolotl logs them in debug.log."""
    found = []
    for text in re.findall(r"\{'[^{}]*\}", path.read_text(encoding="utf-8", errors="replace")):
        try:
            found.append(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            continue
    return found


def _last_loss(log: list[dict]) -> float | None:
    losses = [float(e["loss"]) for e in log if "loss" in e]
    return losses[-1] if losses else None


def _prepared_tokens(prepared: Path) -> int:
    from datasets import load_from_disk

    folders = {info.parent for info in prepared.rglob("dataset_info.json")}
    return sum(sum(len(ids) for ids in load_from_disk(str(d))["input_ids"]) for d in folders)


# ---- report ------------------------------------------------------------------------------------


def report(runs: list[dict], built: dict, params: int, device: str, peak: float | None) -> str:
    lines = [
        f"device: {device}",
        f"model: {built['shape']}",
        f"active parameters: {params / 1e9:.2f} B",
        "",
        "| run | samples/s | tokens/s | MFU | peak memory | mean train loss | last logged loss | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        mfu = 6 * params * r["tokens"] / r["seconds"] / peak if peak else None
        r["samples_per_s"], r["tokens_per_s"], r["mfu"] = r["samples"] / r["seconds"], r["tokens"] / r["seconds"], mfu
        lines.append(
            f"| {r['run']} | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{f'{mfu:.1%}' if mfu else '-'} | {_gib(r['peak_memory_gib'])} | {_num(r['train_loss'])} | "
            f"{_num(r['final_loss'])} | "
            f"{r['seconds']:.1f} s |"
        )
    lines.append(
        f"\nspeed-up (troupe / baseline, samples/s): {runs[1]['samples_per_s'] / runs[0]['samples_per_s']:.2f}×"
    )
    return "\n".join(lines)


def _gib(value) -> str:
    return f"{value:.1f} GiB" if value else "-"


def _num(value) -> str:
    return f"{value:.3f}" if value is not None else "-"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=("real", "tiny"), default="real" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--samples", type=int, default=3350, help="the whole dataset; 80%% trains, like the seed")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Layout(REPO, "bench_train_speed").output_dir)
    parser.add_argument("--run", choices=("baseline",), help=argparse.SUPPRESS)  # a fresh process for one run
    args = parser.parse_args()
    if args.run == "baseline":
        (args.workdir / "baseline.json").write_text(json.dumps(run_baseline(args.workdir, args.epochs)))
        return
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    recipe = Layout(work, "kaltsit").recipe
    recipe.parent.mkdir(parents=True)
    shutil.copy(Layout(REPO, "kaltsit").recipe, recipe)
    samples = kaltsit_samples(args.samples)
    train = samples[: int(len(samples) * 0.8)]
    (work / "train.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in train), "utf-8")
    built = build_model(work / "model", args.shape, samples)
    env = {**os.environ, "AXOLOTL_DO_NOT_TRACK": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, __file__, "--run", "baseline", "--workdir", str(work), "--epochs", str(args.epochs)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"baseline failed:\n{done.stderr[-3000:]}")
    baseline = json.loads((work / "baseline.json").read_text())
    troupe = run_troupe(work, args.epochs, built.get("overrides", []))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device), None)
    table = report([baseline, troupe], built, active_parameters(work / "model"), device, peak)
    print(table)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "train_speed.json").write_text(
        json.dumps(
            {
                "device": device,
                "model": built,
                "runs": [baseline, troupe],
                "args": {k: str(v) for k, v in vars(args).items()},
            },
            indent=2,
        )
    )
    (results / "train_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"bench wall time {time.perf_counter() - start:.0f} s")
