"""Every seed recipe, offline on the tiny model: convert its own fixture → tokenise (only the trained
turns carry labels) → 2 training steps → adapter written. `yoda` starts from `leprechaun`'s adapter."""

import json

import pytest
import yaml
from helpers import cli, prepared_rows, trained_spans
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

TINY = [
    "base_model=models/tiny",
    "eot_tokens=[<turn|>]",
    "max_steps=2",
    "num_epochs=1",
    "micro_batch_size=2",
    "gradient_accumulation_steps=1",
    "sequence_len=2048",
    "eval_steps=2",
    "save_steps=2",
    "warmup_steps=0",
    "warmup_ratio=null",
]
CHAT_RECIPES = ["elderly_companion", "sherlock", "sherlock_qlora"]  # leprechaun: in the yoda test


@pytest.fixture(scope="module")
def root(demo_copy):
    return demo_copy


def records(root, slug: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / "datasets" / slug / f"{split}.jsonl").read_text("utf-8").splitlines()]


def trained_texts(root, slug: str) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "tiny")
    rows = prepared_rows(next((root / "datasets" / ".prepared" / slug).iterdir()))
    return [tokenizer.decode(span) for row in rows for span in trained_spans(row["input_ids"], row["labels"])]


@pytest.mark.parametrize("slug", CHAT_RECIPES)
def test_chat_recipe_trains_only_the_replies(root, slug):
    cli("train", slug, *TINY, root=root)
    assert (root / "outputs" / slug / "adapter" / "adapter_model.safetensors").is_file()
    replies = {
        m.get("content", m.get("value"))
        for split in ("train", "validation")
        for r in records(root, slug, split)
        for m in r.get("messages", r.get("conversations"))
        if m.get("role", m.get("from")) in ("assistant", "gpt")
    }
    texts = trained_texts(root, slug)
    assert texts and all(t.endswith("<turn|>") and t[: -len("<turn|>")] in replies for t in texts)


def test_completion_recipe_trains_the_whole_poem(root):
    cli("train", "tang_poetry", *TINY, root=root)
    assert (root / "outputs" / "tang_poetry" / "adapter" / "adapter_model.safetensors").is_file()
    poems = [r["text"] for split in ("train", "validation") for r in records(root, "tang_poetry", split)]
    texts = trained_texts(root, "tang_poetry")
    assert len(texts) == len(poems) and all(any(poem in text for poem in poems) for text in texts)


def adapter(root, slug: str) -> dict:
    return load_file(root / "outputs" / slug / "adapter" / "adapter_model.safetensors")


def test_yoda_trains_leprechaun_first_and_starts_from_its_adapter(root):
    cli("train", "yoda", *TINY, root=root)
    assert (root / "outputs" / "leprechaun" / "adapter" / "adapter_model.safetensors").is_file()  # trained first
    assert all(t.endswith("<turn|>") for t in trained_texts(root, "leprechaun"))
    leprechaun = adapter(root, "leprechaun")
    assert any(tensor.abs().sum() > 0 for key, tensor in leprechaun.items() if "lora_B" in key)  # it trained
    # With a learning rate of 0 yoda's weights never move: what it saves is what it started from.
    cli("train", "yoda", *TINY, "learning_rate=0", root=root)
    yoda = adapter(root, "yoda")
    assert yoda.keys() == leprechaun.keys() and all((yoda[k] == leprechaun[k]).all() for k in yoda)
    assert (
        yaml.safe_load((root / "outputs" / "yoda" / "adapter" / "train.resolved.yaml").read_text())["lora_model_dir"]
        == "outputs/leprechaun/adapter"
    )
    # Without `troupe.after` nothing tells Axolotl to load an adapter: it starts a fresh LoRA.
    cli("train", "yoda", *TINY, "troupe.after=null", "--dry-run", root=root)
    assert "lora_model_dir" not in yaml.safe_load((root / "outputs" / "yoda" / "train.dry-run.yaml").read_text())


def test_kaltsit_trains_on_the_tiny_model_from_local_story_files(root):
    """Seed 000 offline: the demo story stands in for the downloads, the tiny Llama for Gemma 4 (whose
    LoRA pattern is checked on the real architecture in test_gemma4_kaltsit.py)."""
    offline = [
        "troupe.source.files=[recipes/demo/*.json]",
        "troupe.character.name=闻钟",
        "lora_target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
    ]
    cli("train", "kaltsit", *TINY, *offline, root=root)
    assert (root / "outputs" / "kaltsit" / "adapter" / "adapter_model.safetensors").is_file()
    texts = trained_texts(root, "kaltsit")
    replies = {
        r["messages"][-1]["content"] for split in ("train", "validation") for r in records(root, "kaltsit", split)
    }
    assert texts and all(t.endswith("<turn|>") and t[: -len("<turn|>")] in replies for t in texts)
