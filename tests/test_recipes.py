"""Every recipe in recipes/ (found on the filesystem: a new recipe is tested automatically)
passes `troupe check` and its resolved config passes Axolotl's own validate_config, rendered for
a GPU and for this CPU."""

import copy
from pathlib import Path

import pytest
from helpers import REPO

from troupe.project import recipe_names
from troupe.recipe import load_recipe
from troupe.render import resolve
from troupe.validate import data_problems, engine_problems

RECIPES = recipe_names(REPO)


def test_recipes_are_found_on_the_filesystem():
    assert {"demo", "kaltsit"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("cuda", [True, False], ids=["gpu", "cpu"])
def test_recipe_passes_check_and_axolotl_validation(name, cuda):
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    recipe = load_recipe(name, root=REPO)
    resolved = resolve(recipe, cuda=cuda)
    assert data_problems(recipe) + engine_problems(recipe, resolved) == []
    validated = validate_config(DictDefault(copy.deepcopy(resolved.config)))
    assert validated["seed"] == recipe.axolotl["seed"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_opens_with_a_header_that_says_how_to_run_it(name):
    """What a user needs and no more (torchtune's config headers): what it trains, what to run first,
    how to launch, what to expect, in at most 15 comment lines; tuning history lives in docs/recipes.md."""
    header = header_lines(REPO / "recipes" / f"{name}.yaml")
    assert header and header[0].startswith("# ")
    assert all(line.startswith("#") for line in header), f"recipes/{name}.yaml: only comments above troupe:"
    assert len(header) <= 15, f"recipes/{name}.yaml header has {len(header)} comment lines (at most 15)"
    text = "\n".join(header)
    for word in ("Run first:", "Launch:", "Expect:", f"CHARACTER={name}"):
        assert word in text, f"recipes/{name}.yaml header lacks {word!r}"


def header_lines(path: Path) -> list[str]:
    """The lines above `troupe:`, blank ones left out."""
    text = path.read_text(encoding="utf-8")
    return [line for line in text.split("\ntroupe:")[0].splitlines() if line.strip()]


def test_kaltsit_is_faithful_to_seed_000():
    recipe = load_recipe("kaltsit", root=REPO)
    cfg, spec = recipe.axolotl, recipe.spec
    assert cfg["base_model"] == "google/gemma-4-E4B-it"
    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (8, 16, 0.05)
    assert (cfg["num_epochs"], cfg["micro_batch_size"], cfg["gradient_accumulation_steps"]) == (2, 2, 8)
    assert (cfg["learning_rate"], cfg["lr_scheduler"], cfg["warmup_steps"]) == (5e-5, "cosine", 10)
    assert (cfg["sequence_len"], cfg["bf16"], cfg["eval_steps"], cfg["seed"]) == (512, True, 50, 42)
    assert cfg["load_best_model_at_end"] and cfg["metric_for_best_model"] == "eval_loss"
    assert cfg["datasets"][0]["roles_to_train"] == ["assistant"]  # completion-only loss
    assert cfg["eot_tokens"] == ["<turn|>"] and "language_model" in cfg["lora_target_modules"]
    assert (spec.dataset.context_lines, spec.dataset.min_chars, spec.dataset.max_chars) == (3, 2, 300)
    assert (spec.dataset.split.train, spec.dataset.split.seed, spec.dataset.split.by) == (0.8, 42, "sample")
    assert spec.prompt.system.startswith("你正在扮演《明日方舟》中的凯尔希。") and spec.prompt.system.count("\n") == 8
    assert spec.prompt.user_template == "请根据上下文,以凯尔希的说话风格进行回复。\n\n上下文:\n{context}"


def test_elderly_companion_lora_reproduces_the_seeds_trainable_parameter_count():
    """Seed 001 trained 10,616,832 parameters; the recipe's LoRA on Qwen3.5-4B's real shapes (built
    on the meta device: no weights, no download) must give exactly that."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    cfg = load_recipe("elderly_companion", root=REPO).axolotl
    shape = Qwen3_5TextConfig(
        vocab_size=248320,
        hidden_size=2560,
        intermediate_size=9216,
        num_hidden_layers=32,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=256,
    )
    with torch.device("meta"):
        model = Qwen3_5ForCausalLM(shape)
    lora = LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], target_modules=cfg["lora_target_modules"])
    peft_model = get_peft_model(model, lora)
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == 10_616_832
