"""troupe.provenance: one record shape for every step, one writer, one reader."""

import json

import pytest

from troupe import dataset, preflight, provenance
from troupe.recipe import load_recipe


def test_every_record_has_the_common_fields_and_the_steps_own():
    made = provenance.record("merge", {"adapter_sha256": "ab"})
    assert made["step"] == "merge" and made["adapter_sha256"] == "ab"
    assert made["versions"]["troupe"] and made["finished"]


def test_a_record_not_built_by_record_is_refused(tmp_path):
    with pytest.raises(ValueError, match="provenance.record"):
        provenance.write_record(tmp_path, {"step": "merge", "adapter_sha256": "ab"})


def test_the_reader_refuses_another_steps_record_and_reads_an_older_one(tmp_path):
    provenance.write_record(tmp_path, provenance.record("merge", {}))
    assert provenance.read_record(tmp_path, "merge")["step"] == "merge"
    assert provenance.read_record(tmp_path, "train") is None
    (tmp_path / provenance.RUN_FINISHED).write_text(json.dumps({"global_step": 2, "max_steps": 2}))  # troupe ≤ 0.1
    assert provenance.run_finished(tmp_path) == {"global_step": 2, "max_steps": 2}


def test_the_run_finished_record_is_a_record_like_the_others(tmp_path):
    steps = {"global_step": 3, "max_steps": 4}
    provenance.write_record(tmp_path, provenance.record("train-loop", steps), provenance.RUN_FINISHED)
    assert provenance.run_finished(tmp_path) == steps


def test_the_dataset_manifest_is_the_convert_steps_record(project):
    recipe = load_recipe("demo", root=project)
    built = dataset.build(recipe, "troupe convert demo")
    manifest = dataset.read_manifest(recipe)
    assert manifest == built and manifest["step"] == "convert" and manifest["command"] == "troupe convert demo"
    assert set(manifest["files"]) == {"train", "validation", "test"} and manifest["counts"]["train"] > 0
    assert provenance.read_record(recipe.layout.dataset_dir, "convert", "manifest.json") == manifest
    assert "built by troupe " + manifest["versions"]["troupe"] in (recipe.layout.dataset_dir / "card.md").read_text()


def test_a_model_folders_digest_leaves_out_when_its_record_was_written(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    provenance.write_record(tmp_path, provenance.record("tiny-model", {"stamp": "s"}))
    before = preflight.digest(tmp_path, "model")
    (tmp_path / provenance.RECORD).write_text(json.dumps(provenance.record("tiny-model", {"stamp": "s", "x": 1})))
    assert preflight.digest(tmp_path, "model") == before != "missing"
