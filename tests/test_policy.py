"""The safety policy (troupe/policy.py): an allowlist that classifies every key Axolotl knows, each
unsafe thing refused with one clear line and accepted with --allow-unsafe; YAML alias bombs and
shell-injection names never get anywhere. (The attacks themselves, through the CLI: test_attacks.py.)"""

import pytest
from helpers import REPO, run_make

from troupe import policy
from troupe.errors import TroupeError
from troupe.recipe import load_recipe, read_yaml
from troupe.validate import data_problems

UNSAFE = [  # (override on the demo recipe, the key refused, words of the reason)
    ("trust_remote_code=true", "trust_remote_code", "runs Python code"),
    ("plugins=[evil.module.Plugin]", "plugins", "not reviewed"),
    ("datasets.0.type=mypackage.load_everything", "datasets[0].type", "not one of Axolotl's prompt strategies"),
    ("chat_template_jinja=../../etc/template.jinja", "chat_template_jinja", "contains '..'"),
    ("deepspeed=/opt/zero3.json", "deepspeed", "configs/parallel"),
    ("base_model=/home/someone/models/llama", "base_model", "absolute path"),
    ("base_model=../models/llama", "base_model", "contains '..'"),
    ("hub_model_id=someone/my-model", "hub_model_id", "publishes"),
    ("push_dataset_to_hub=someone/data", "push_dataset_to_hub", "publishes"),
    ("hub_strategy=every_save", "hub_strategy", "publishes"),
    ("troupe.source.files=[/etc/*.json]", "troupe.source.files", "absolute path"),
    ("troupe.source.files=[../../secrets/*.json]", "troupe.source.files", "contains '..'"),
    ("troupe.source.files=[.git/config]", "troupe.source.files", "hidden"),
    ("torchdistx_path=recipes/demo", "torchdistx_path", "runs Python code"),
    ("trl={reward_funcs: [a.b]}", "trl", "runs Python code"),
    ("use_kernels=true", "use_kernels", "runs Python code"),
    ("attn_implementation=kernels-community/flash-attn3", "attn_implementation", "is not one of"),
    ("model_type=mypackage.Model", "model_type", "not a transformers class name"),
    ("wandb_log_model=checkpoint", "wandb_log_model", "publishes"),
    ("use_mlflow=true", "use_mlflow", "publishes"),
    ("do_causal_lm_eval=true", "do_causal_lm_eval", "metric scripts"),
    ("deepspeed=recipes/demo/ds.json", "deepspeed", "configs/parallel"),
    ("datasets.0.data_files=[a.json]", "datasets[0].data_files", "reads files"),
    ("datasets.0.chat_template_jinja=/etc/hostname", "datasets[0].chat_template_jinja", "absolute path"),
    ("datasets.0.novel_field=1", "datasets[0].novel_field", "not on troupe's list"),
    ("plugins=[axolotl.integrations.lm_eval.LMEvalPlugin]", "plugins", "not reviewed"),
]


def findings(recipe) -> list[str]:
    return [str(p) for p in data_problems(recipe) if "unsafe:" in p.problem]


def test_shipped_recipes_are_safe(project):
    for name in ("demo", "kaltsit", "yoda", "sherlock_qlora", "tang_poetry", "elderly_companion", "leprechaun"):
        assert findings(load_recipe(name)) == [], name


def test_every_axolotl_key_is_classified():
    """An Axolotl upgrade that adds a key fails here until the key is reviewed: the allowlist can
    never widen silently (and an unclassified key is refused meanwhile)."""
    from axolotl.utils.schemas import datasets as schemas
    from axolotl.utils.schemas.config import AxolotlInputConfig

    def names(model) -> set[str]:
        return set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}

    unclassified = names(AxolotlInputConfig) - policy.classified_keys()
    assert not unclassified, f"classify these keys in troupe/policy.py: {sorted(unclassified)}"
    dataset_fields = names(schemas.SFTDataset)
    assert not dataset_fields - policy.classified_dataset_keys(), sorted(
        dataset_fields - policy.classified_dataset_keys()
    )


def test_the_reviewed_plugins_and_their_keys_are_known():
    from axolotl.integrations.cut_cross_entropy.args import CutCrossEntropyArgs
    from axolotl.integrations.liger.args import LigerArgs

    for args in (LigerArgs, CutCrossEntropyArgs):
        assert set(args.model_fields) <= policy.INERT
    assert findings(load_recipe("demo", ["plugins=[axolotl.integrations.liger.LigerPlugin]", "liger_rope=true"])) == []


def test_the_built_in_prompt_formats_are_axolotls():
    from axolotl.utils.data.wrappers import DATASET_HANDLERS

    assert set(DATASET_HANDLERS) == policy.PROMPT_HANDLERS


def test_no_key_is_both_allowed_and_refused():
    allowed = policy.classified_keys() - set(policy.denied_reasons())
    assert not allowed & set(policy.denied_reasons())
    groups = [policy.INERT, policy.MODEL, policy.IDENTIFIER, policy.TEMPLATE, policy.PARALLEL, policy.RENDERED]
    assert sum(map(len, groups)) == len(frozenset().union(*groups)), "a key sits in two groups"


@pytest.mark.parametrize(
    "kind, refused",
    [
        ("chat_template", False),
        ("alpaca", False),
        ("dpo.chatml", False),
        ("alpaca_w_system.load_open_orca", False),
        ("bradley_terry.chat_template", False),
        ("chat_template.evilmod", True),
        ("this.Plugin", True),
        ("os.system", True),
        ("../../x", True),
        ("Chat_Template", True),
    ],
)
def test_dataset_types_are_axolotls_own_strategies_found_without_importing(kind, refused):
    assert bool(policy.strategy_problem(kind)) == refused


@pytest.mark.parametrize("override, key, reason", UNSAFE, ids=[u[1] + ":" + u[0][:20] for u in UNSAFE])
def test_each_unsafe_setting_is_refused_and_allowed_only_when_trusted(project, override, key, reason):
    (line,) = findings(load_recipe("demo", [override]))
    assert f": {key}: unsafe: " in line and reason in line and "--allow-unsafe" in line
    assert findings(load_recipe("demo", [override], allow_unsafe=True)) == []


@pytest.mark.parametrize(
    "url, refused",
    [
        ("https://mirror.example.org/", False),
        ("http://127.0.0.1:8000/", False),
        ("http://localhost/", False),
        ("http://mirror.example.org/", True),
        ("ftp://127.0.0.1/", True),
        ("file:///etc/", True),
    ],
)
def test_story_mirrors_must_be_https_or_local(project, url, refused):
    recipe = load_recipe("kaltsit", [f"troupe.source.base_url={url}"])
    assert bool(findings(recipe)) == refused


def test_a_yaml_alias_bomb_is_refused(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb.append(
            f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, "
            f"*{previous}, *{previous}, *{previous}, *{previous}, *{previous}]"
        )
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n")
    with pytest.raises(TroupeError, match="aliases expand to more than"):
        read_yaml(path)


def test_a_shell_injection_name_only_prints_an_error(tmp_path):
    victim = tmp_path / "pwned"
    done = run_make("-s", "check", f"CHARACTER=x; touch {victim}", root=REPO)
    assert done.returncode != 0 and not victim.exists()
    assert done.stderr.startswith("error: ")  # troupe refused the name; the shell never ran it
