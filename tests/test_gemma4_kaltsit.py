"""The kaltsit recipe on a tiny random model of the real Gemma 4 architecture (text + vision +
audio towers, built here from transformers' Gemma 4 config classes): LoRA lands on the language
model's linear layers only, and the chat template trains the end-of-turn token <turn|>."""

import copy
import json
import re
import shutil

import pytest
from helpers import REPO, cli, prepared_rows, trained_spans

pytestmark = pytest.mark.slow

# Story data offline: the demo's story files stand in for the downloaded ones.
OFFLINE = [
    "troupe.source.files=[recipes/demo/*.json]",
    "troupe.character.name=闻钟",
    "base_model=models/gemma4-tiny",
]
LM_LINEAR = re.compile(
    r"base_model\.model\.model\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma4")
    shutil.copytree(REPO / "recipes", root / "recipes")
    cli("convert", "kaltsit", *OFFLINE, root=root)
    cli("tiny-model", "--recipe", "kaltsit", "--arch", "gemma4", "--out", "models/gemma4-tiny", root=root)
    return root


def lora_module_names(root, **changes) -> list[str]:
    """Apply Axolotl's own LoRA loader, with the resolved kaltsit config, to the tiny Gemma 4."""
    from axolotl.loaders.adapter import load_lora
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    from troupe.recipe import load_recipe
    from troupe.render import resolve

    config = copy.deepcopy(resolve(load_recipe("kaltsit", OFFLINE, root=root), cuda=False).config)
    config.update(changes)
    model = AutoModelForCausalLM.from_pretrained(root / "models" / "gemma4-tiny")
    assert type(model).__name__ == "Gemma4ForConditionalGeneration"  # the towers are there
    peft_model, _ = load_lora(model, validate_config(DictDefault(config)))
    return [name for name, module in peft_model.named_modules() if isinstance(module, LoraLayer)]


def test_lora_targets_only_the_language_models_linear_layers(root):
    names = lora_module_names(root)
    assert len(names) == 2 * 7  # two decoder layers × q, k, v, o, gate, up, down
    assert all(LM_LINEAR.fullmatch(name) for name in names), names


def test_the_seeds_all_linear_would_also_adapt_the_towers(root):
    names = lora_module_names(root, lora_target_modules=None, lora_target_linear=True)
    assert any("vision_tower" in n for n in names) and any("audio_tower" in n for n in names)


def test_the_gemma4_template_trains_the_end_of_turn_token(root):
    from transformers import AutoTokenizer

    cli("preprocess", "kaltsit", "--debug", *OFFLINE, root=root)
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "gemma4-tiny")
    replies = {
        json.loads(line)["messages"][-1]["content"]
        for split in ("train", "validation")
        for line in (root / "datasets" / "kaltsit" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    }
    rows = prepared_rows(next((root / "datasets" / ".prepared" / "kaltsit").iterdir()))
    assert rows
    for row in rows:
        (span,) = trained_spans(row["input_ids"], row["labels"])
        text = tokenizer.decode(span)
        assert text.endswith("<turn|>") and text[: -len("<turn|>")] in replies


def test_check_knows_the_gemma4_template_needs_eot_tokens(root):
    done = cli("check", "kaltsit", *OFFLINE, "eot_tokens=null", root=root, check=False)
    assert done.returncode == 1 and 'add `eot_tokens: ["<turn|>"]`' in done.stderr
