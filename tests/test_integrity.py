"""Nothing partial or stale looks complete: each scenario of a careless user (interrupting,
retraining, killing a step, copying files by hand) through the real CLI on the tiny model. Every
step records what it was made from; consumers check that record, never a file's presence."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import as_a_terminal_job, cli

from troupe import dataset, pipeline, provenance
from troupe.errors import TroupeError
from troupe.plan import Needs, make_plan
from troupe.recipe import load_recipe
from troupe.render import write_resolved

pytestmark = pytest.mark.slow

QUICK = ["max_steps=4", "eval_steps=2", "save_steps=2", "warmup_steps=0"]
FIX = "make convert CHARACTER=demo"  # what a refused evaluation tells the user to run


@pytest.fixture(scope="module")
def trained(demo_copy):
    """The demo converted, its tiny model built, and one adapter trained and merged."""
    cli("train", "demo", *QUICK, root=demo_copy)
    cli("merge", "demo", root=demo_copy)
    return demo_copy


def adapter_sha(root) -> str:
    return provenance.read_record(root / "outputs" / "demo" / "adapter")["adapter_sha256"]


def test_a_trained_adapter_records_what_it_was_made_from(trained):
    folder = trained / "outputs" / "demo" / "adapter"
    record = provenance.read_record(folder)
    manifest = json.loads((trained / "datasets" / "demo" / "manifest.json").read_text())
    assert record["dataset_splits"] == {name: entry["sha256"] for name, entry in manifest["files"].items()}
    assert record["adapter_sha256"] == provenance.weights_sha256(folder)
    assert record["versions"]["axolotl"] == "0.19.0" and record["overrides"] == QUICK
    assert (folder / "train.resolved.yaml").is_file() and (folder / "trainer_state.json").is_file()
    assert not list(folder.glob("checkpoint-*")) and not list((trained / "outputs" / "demo" / "runs").iterdir())


def test_the_same_recipe_trains_the_same_adapter(trained):
    """`seed` fixes the whole run, the LoRA's initial weights included (Axolotl alone seeds only when
    it builds the Trainer, after PEFT has drawn them)."""
    before = adapter_sha(trained)
    cli("train", "demo", *QUICK, root=trained)
    assert adapter_sha(trained) == before
    assert provenance.model_to_load(load_recipe("demo", root=trained).layout).kind == "merged"  # still current


def test_ctrl_c_during_training_keeps_the_previous_adapter(trained):
    before = adapter_sha(trained)
    env = {**os.environ, "TROUPE_ROOT": str(trained)}
    command = [sys.executable, "-m", "troupe", "train", "demo", "max_steps=400", "save_steps=2", "eval_steps=1000"]
    process = subprocess.Popen(  # its own process group, as a terminal's foreground job
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=as_a_terminal_job,
    )
    runs = trained / "outputs" / "demo" / "runs"
    deadline = time.monotonic() + 300
    while not list(runs.glob("*/checkpoint-2")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)  # a checkpoint proves training is under way: Ctrl-C lands mid-run
    assert list(runs.glob("*/checkpoint-2")), "training never got going"
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: troupe and Axolotl both get it
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert adapter_sha(trained) == before  # the previous adapter, untouched
    assert provenance.weights_sha256(trained / "outputs" / "demo" / "adapter") == before
    listed = cli("list", root=trained).stdout
    assert "interrupted" in next(line for line in listed.splitlines() if line.startswith("demo "))


def axolotl_stopped_by_ctrl_c(recipe, result, run_dir):
    """What `axolotl train` leaves after a SIGINT (its handler saves the model and exits 0): the config
    it received, half-trained weights, the checkpoints saved so far, and no run-finished record."""
    result.config["output_dir"] = recipe.layout.rel(run_dir)
    write_resolved(recipe, result, run_dir / "train.resolved.yaml", "train")
    (run_dir / "adapter_model.safetensors").write_bytes(b"half-trained")
    (run_dir / "checkpoint-2").mkdir()
    (run_dir / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2, "max_steps": 400}')
    (run_dir / "checkpoint-4").mkdir()  # being saved when the signal came: not a checkpoint to resume from


def test_a_run_that_axolotl_ended_early_with_exit_0_is_not_promoted(trained, monkeypatch):
    """Ctrl-C that only Axolotl sees (troupe in the background ignores SIGINT, as a shell's `&` job
    does): troupe sees exit 0 and weights, and must still not promote the run. Resuming with another
    config is refused. (The plugin's record of a finished run is what every real run here is promoted by.)"""
    before = adapter_sha(trained)
    settings = ["max_steps=400", "save_steps=2", "eval_steps=1000"]
    monkeypatch.setattr(pipeline, "_run_training", axolotl_stopped_by_ctrl_c)
    with pytest.raises(TroupeError) as stopped:
        pipeline.train(make_plan(load_recipe("demo", settings, root=trained), Needs.TRAIN))
    message = str(stopped.value)
    assert "step 2 of 400" in message  # where it stopped
    assert "make train CHARACTER=demo RESUME=1" in message
    assert adapter_sha(trained) == before
    runs = trained / "outputs" / "demo" / "runs"
    (run,) = runs.iterdir()
    assert provenance.checkpoints(run) == [run / "checkpoint-2"] and provenance.run_finished(run) is None
    with pytest.raises(TroupeError, match=r"started with a different config \(max_steps\)"):
        pipeline.train(
            make_plan(load_recipe("demo", ["max_steps=401", *settings[1:]], root=trained), Needs.TRAIN), resume=True
        )
    assert list(runs.iterdir()) == [run]  # a refused resume removes nothing
    shutil.rmtree(run)


def test_evaluation_refuses_splits_the_adapter_was_not_trained_against(trained):
    """A dataset rebuilt with another split seed puts training samples into the test split."""
    cli("convert", "demo", "troupe.dataset.split.seed=7", root=trained)
    refused = cli("evaluate", "demo", root=trained, check=False)
    assert refused.returncode == 1 and "datasets/demo" in refused.stderr and FIX in refused.stderr
    assert not (trained / "outputs" / "demo" / "eval").exists()  # nothing was scored
    cli("convert", "demo", root=trained)  # back to the splits it was trained on
    test_split = load_recipe("demo", root=trained).layout.split("test")
    original = test_split.read_text(encoding="utf-8")
    test_split.write_text(original.replace("\n", "\n", 1)[: len(original) // 2], encoding="utf-8")
    edited = cli("evaluate", "demo", root=trained, check=False)
    assert edited.returncode == 1 and "datasets/demo" in edited.stderr and FIX in edited.stderr
    assert not (trained / "outputs" / "demo" / "eval").exists()
    test_split.write_text(original, encoding="utf-8")


def test_a_merged_model_from_an_older_adapter_is_never_served(trained):
    assert provenance.model_to_load(load_recipe("demo", root=trained).layout).kind == "merged"
    cli("train", "demo", *QUICK, "lora_r=4", root=trained)
    layout = load_recipe("demo", root=trained).layout
    choice = provenance.model_to_load(layout)
    assert choice.kind == "adapter" and "older adapter" in choice.note
    done = cli("vllm", "demo", root=trained)
    assert "--lora-modules demo=" in done.stdout and "merged" not in done.stdout
    assert "older adapter" in done.stderr
    assert "merged (stale)" in cli("list", root=trained).stdout


def test_a_merge_killed_half_way_leaves_the_previous_state(trained):
    layout = load_recipe("demo", root=trained).layout
    before = provenance.model_to_load(layout)
    leftover = layout.output_dir / ".merged.new-killed"  # what a SIGKILL mid-merge leaves: no weights, no record
    (leftover / "merged").mkdir(parents=True)
    (leftover / "merged" / "config.json").write_text("{}")
    assert provenance.model_to_load(layout) == before
    cli("merge", "demo", root=trained)
    assert not leftover.exists() and provenance.model_to_load(layout).kind == "merged"


def test_a_dataset_whose_files_do_not_match_its_manifest_is_not_current(trained):
    recipe = load_recipe("demo", root=trained)
    assert dataset.is_current(recipe)
    train = recipe.layout.split("train")
    original = train.read_bytes()
    train.write_bytes(original[: len(original) // 2])  # a convert killed after writing train.jsonl
    assert not dataset.is_current(recipe)
    assert "is current" not in cli("train", "demo", "--dry-run", root=trained).stdout
    train.write_bytes(original)
    assert dataset.is_current(recipe)


def test_a_failed_convert_leaves_the_previous_dataset_whole(trained, monkeypatch):
    recipe = load_recipe("demo", root=trained)
    before = {p.name: p.read_bytes() for p in recipe.dataset_dir.iterdir() if p.is_file()}

    def killed(*args):
        raise KeyboardInterrupt  # dies after reading the source, before the new folder is in place

    monkeypatch.setattr(dataset, "replace_dir", killed)
    with pytest.raises(KeyboardInterrupt):
        dataset.build(recipe, "troupe convert demo")
    after = {p.name: p.read_bytes() for p in recipe.dataset_dir.iterdir() if p.is_file()}
    assert after == before and dataset.is_current(recipe)
    assert not list(recipe.dataset_dir.parent.glob(".demo.*"))


def test_evaluate_and_serve_refuse_before_training(project):
    with pytest.raises(TroupeError, match="no trained adapter in outputs/demo/adapter.*make train CHARACTER=demo"):
        provenance.model_to_load(load_recipe("demo", root=project).layout)


def test_evaluation_loads_a_4bit_recipe_as_training_did(project):
    """bitsandbytes needs CUDA, so on this machine the loader's arguments are what is checked."""
    from troupe.evaluation.generation import loader_kwargs
    from troupe.render import resolve

    config = resolve(load_recipe("sherlock_qlora"), cuda=True).config
    kwargs = loader_kwargs(config)
    quantization = kwargs["quantization_config"]
    assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4"
    assert quantization.bnb_4bit_use_double_quant and str(kwargs["dtype"]) == "torch.bfloat16"
    assert "quantization_config" not in loader_kwargs(resolve(load_recipe("sherlock"), cuda=True).config)
