"""troupe.render: what Axolotl receives, and the environment it runs in."""

import yaml

from troupe.launch import Launch
from troupe.recipe import load_recipe
from troupe.render import CPU_SAFE, TROUPE_PLUGIN, prepared_path, resolve, resolved_yaml, run_env, write_resolved


def manifest_with(train_sha: str) -> dict:
    return {"files": {"train": {"sha256": train_sha}, "validation": {"sha256": "v"}, "test": {"sha256": "t"}}}


def test_troupe_block_is_stripped_and_the_paths_come_from_the_slug(project):
    config = resolve(load_recipe("kaltsit"), cuda=True).config
    assert "troupe" not in config and config["output_dir"] == "outputs/kaltsit"
    assert config["datasets"][0]["path"] == "datasets/kaltsit/train.jsonl"
    assert config["test_datasets"][0]["path"] == "datasets/kaltsit/validation.jsonl"
    assert "lora_model_dir" not in config
    assert resolve(load_recipe("yoda"), cuda=True).config["lora_model_dir"] == "outputs/leprechaun/adapter"


def test_every_run_gets_troupes_plugin(project):
    """It seeds before the LoRA is drawn and records a run that reached its end (full fine-tuning too)."""
    liger = "axolotl.integrations.liger.LigerPlugin"
    assert resolve(load_recipe("demo"), cuda=False).config["plugins"] == [TROUPE_PLUGIN]
    assert resolve(load_recipe("kaltsit", [f"plugins=[{liger}]"]), cuda=True).config["plugins"] == [
        liger,
        TROUPE_PLUGIN,
    ]
    assert resolve(load_recipe("demo", ["adapter=null"]), cuda=False).config["plugins"] == [TROUPE_PLUGIN]


def test_cpu_forces_safe_settings_and_says_so_in_one_line(project):
    recipe = load_recipe("kaltsit", ["plugins=[axolotl.integrations.liger.LigerPlugin]", "liger_rms_norm=true"])
    resolved = resolve(recipe, cuda=False)
    for key, value in CPU_SAFE.items():
        assert resolved.config[key] == value
    assert resolved.config["plugins"] == [TROUPE_PLUGIN] and resolved.config["liger_rms_norm"] is False
    (note,) = resolved.notes
    assert note.startswith("no CUDA device: CPU-safe settings applied") and "bf16 True → False" in note
    assert "LigerPlugin" in note


def test_gpu_keeps_the_recipe_settings(project):
    recipe = load_recipe("kaltsit")
    resolved = resolve(recipe, cuda=True)
    assert resolved.config["bf16"] is True and resolved.notes == []
    assert resolved.launcher_args()[:2] == ["--launcher", "accelerate"]
    assert resolve(recipe, cuda=False).launcher_args() == ["--launcher", "python"]


def test_prepared_cache_is_keyed_on_the_dataset_contents(project):
    recipe = load_recipe("demo")
    first = resolve(recipe, manifest_with("a" * 64), cuda=False).config["dataset_prepared_path"]
    second = resolve(recipe, manifest_with("b" * 64), cuda=False).config["dataset_prepared_path"]
    assert first.startswith("datasets/.prepared/demo/") and first != second
    assert first == prepared_path(recipe, manifest_with("a" * 64), recipe.axolotl)


def test_prepared_cache_is_keyed_on_the_tokenizer_files(project):
    """A base model rebuilt at the same path tokenises differently: the old cache must not be reused."""
    recipe = load_recipe("demo")
    folder = project / recipe.axolotl["base_model"]
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text('{"version": "1"}')
    first = resolve(recipe, manifest_with("a" * 64), cuda=False).config["dataset_prepared_path"]
    (folder / "tokenizer.json").write_text('{"version": "2"}')
    second = resolve(recipe, manifest_with("a" * 64), cuda=False).config["dataset_prepared_path"]
    assert first != second


def test_resolved_file_is_exactly_the_config_with_overrides_noted(project):
    recipe = load_recipe("demo", ["max_steps=2", "troupe.evaluate.max_new_tokens=8"])
    resolved = resolve(recipe, cuda=False)
    path = write_resolved(recipe, resolved, project / "outputs" / "demo" / "train.dry-run.yaml", "train --dry-run")
    text = path.read_text(encoding="utf-8")
    assert "# overrides: max_steps=2 troupe.evaluate.max_new_tokens=8" in text and "for `train --dry-run`" in text
    assert yaml.safe_load(text) == resolved.config and resolved.config["max_steps"] == 2
    assert text == resolved_yaml(recipe, resolved, "train --dry-run")
    assert recipe.spec.evaluate.max_new_tokens == 8


def test_environment_turns_telemetry_and_wandb_off(project, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (project / "models" / "tiny").mkdir(parents=True)
    env = run_env({"base_model": "models/tiny"}, project)
    assert env["AXOLOTL_DO_NOT_TRACK"] == "1" and env["DO_NOT_TRACK"] == "1"
    assert env["WANDB_MODE"] == "disabled" and env["HF_HUB_OFFLINE"] == "1"
    hub = run_env({"base_model": "google/gemma-4-E4B-it", "wandb_project": "mine"}, project)
    assert "WANDB_MODE" not in hub and "HF_HUB_OFFLINE" not in hub


def test_several_gpus_render_with_a_shipped_parallel_setup(project):
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    from troupe.render import parallel_configs
    from troupe.validate import data_problems, engine_problems

    assert set(parallel_configs()) >= {"zero2", "fsdp2"}
    recipe = load_recipe("kaltsit")
    for name in parallel_configs():
        resolved = resolve(recipe, cuda=True, parallel=name, launch=Launch(gpus=4))
        assert data_problems(recipe) + engine_problems(recipe, resolved) == [], name
        validate_config(DictDefault(resolved.config))
        assert resolved.launcher_args() == [
            "--launcher",
            "accelerate",
            "--",
            "--num_processes",
            "4",
            "--num_machines",
            "1",
        ]
    assert resolve(recipe, cuda=True, parallel="zero2").config["deepspeed"].endswith("configs/parallel/zero2.json")
    assert resolve(recipe, cuda=True, parallel="fsdp2").config["fsdp_version"] == 2


def test_dry_run_prints_the_multi_gpu_command(project, monkeypatch, capsys):
    from troupe.cli import main

    monkeypatch.setenv("TROUPE_DEVICE", "cuda")
    assert main(["train", "kaltsit", "--gpus", "4", "--parallel", "zero2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--launcher accelerate -- --num_processes 4" in out
    assert "deepspeed:" in (project / "outputs" / "kaltsit" / "train.dry-run.yaml").read_text()
    assert not (project / "outputs" / "kaltsit" / "adapter").exists()  # a dry run leaves no training record
    monkeypatch.setenv("TROUPE_DEVICE", "cpu")
    (project / "outputs" / "kaltsit" / "train.dry-run.yaml").unlink()
    assert main(["train", "kaltsit", "--gpus", "4", "--dry-run"]) == 1
    assert "GPUS=4" in capsys.readouterr().err  # the setting this machine cannot run
    assert not (project / "outputs" / "kaltsit" / "train.dry-run.yaml").exists()  # refused before writing
