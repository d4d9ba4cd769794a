"""End to end on the tiny local model: `make demo` for real (the README's first command), in a
throwaway project root: convert → tiny model → preprocess → train → evaluate → merge."""

import json
import os
import shutil
import subprocess

import pytest
from helpers import REPO, debug_label_pairs, prepared_rows, trained_spans, troupe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "recipes", root / "recipes")
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    done = subprocess.run(["make", "-C", str(REPO), "demo"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout + done.stderr


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_prints_a_summary_with_its_wall_time(demo):
    _, output = demo
    summary = output[output.index("demo summary") :]
    for row in (
        "samples (train/val/test)",
        "training steps",
        "train loss",
        "eval loss",
        "test loss / perplexity",
        "merged model",
        "wall time",
    ):
        assert row in summary


def test_dataset_follows_the_output_contract(demo):
    root, _ = demo
    folder = root / "datasets" / "demo"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["train"] == len(read_jsonl(folder / "train.jsonl")) > 50
    sample = read_jsonl(folder / "test.jsonl")[0]
    assert [m["role"] for m in sample["messages"]] == ["system", "user", "assistant"]
    assert {"source", "index", "story"} <= set(sample["meta"])
    assert (folder / "card.md").is_file() and (folder / "rejects.jsonl").is_file()
    assert manifest["command"] == "troupe convert demo"


def test_rebuild_is_byte_identical(demo):
    root, _ = demo
    before = json.loads((root / "datasets" / "demo" / "manifest.json").read_text())["files"]
    troupe("convert", "demo", root=root)
    after = json.loads((root / "datasets" / "demo" / "manifest.json").read_text())["files"]
    assert before == after


def test_only_the_characters_turn_and_its_end_of_turn_token_are_trained(demo):
    from transformers import AutoTokenizer

    root, _ = demo
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "tiny")
    replies = {
        r["messages"][-1]["content"]
        for split in ("train", "validation")
        for r in read_jsonl(root / "datasets" / "demo" / f"{split}.jsonl")
    }
    rows = prepared_rows(next((root / "datasets" / "demo" / "prepared").iterdir()))
    assert len(rows) == 94
    for row in rows:
        (span,) = trained_spans(row["input_ids"], row["labels"])  # exactly one trained run: the reply
        text = tokenizer.decode(span)
        assert text.endswith("<turn|>") and text[: -len("<turn|>")] in replies


def test_preprocess_debug_shows_which_tokens_are_trained(demo):
    from transformers import AutoTokenizer

    root, _ = demo
    done = troupe("preprocess", "demo", "--debug", root=root)
    pairs = debug_label_pairs(done.stdout + done.stderr)
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "tiny")
    end_of_turn = tokenizer.convert_tokens_to_ids("<turn|>")
    trained = [token for label, token in pairs if label != -100]
    assert pairs and trained and trained[-1] == end_of_turn
    assert sum(label == -100 for label, _ in pairs) > len(trained)  # system and context are masked


def test_evaluate_wrote_metrics_and_generations(demo):
    root, _ = demo
    metrics = json.loads((root / "outputs" / "demo" / "eval" / "metrics.json").read_text())
    test_count = len(read_jsonl(root / "datasets" / "demo" / "test.jsonl"))
    assert metrics["test_samples"] == test_count
    for system in ("base", "adapter"):
        values = metrics["systems"][system]
        assert values["test_loss"] > 0 and values["test_perplexity"] > 1 and values["replies"] == test_count
        assert {"empty_rate", "short_rate", "mean_chars", "length_ratio", "top_repeated"} <= set(values)
    adapter, base = metrics["systems"]["adapter"], metrics["systems"]["base"]
    assert adapter["test_loss"] < base["test_loss"]  # training moved the model towards the character
    csv_text = (root / "outputs" / "demo" / "eval" / "generations.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0] == "story,index,context,reference,base,adapter"


def test_merged_model_loads_and_generates_with_the_trained_chat_template(demo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = demo
    merged, adapter = root / "outputs" / "demo" / "merged", root / "outputs" / "demo"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(adapter).chat_template
    model = AutoModelForCausalLM.from_pretrained(merged)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "雾散了吗？"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|turn>model\n")
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_resolved_config_is_what_axolotl_received(demo):
    import yaml

    root, _ = demo
    resolved = yaml.safe_load((root / "outputs" / "demo" / "config.resolved.yaml").read_text())
    assert "troupe" not in resolved and resolved["bf16"] is False and resolved["lora_mlp_kernel"] is False
    assert resolved["dataset_prepared_path"].startswith("datasets/demo/prepared/")


def test_each_story_is_written_readable_and_structured(demo):
    root, _ = demo
    stories = root / "datasets" / "demo" / "stories"
    assert sorted(p.name for p in stories.iterdir()) == [
        f"level_demo_0{i}.{ext}" for i in (1, 2, 3) for ext in ("jsonl", "txt")
    ]
    first = json.loads((stories / "level_demo_01.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"speaker", "text", "kind", "story", "index"}
    assert "[闻钟]:" in (stories / "level_demo_01.txt").read_text(encoding="utf-8")


def test_manifest_reports_leakage_between_splits(demo):
    root, _ = demo
    leakage = json.loads((root / "datasets" / "demo" / "manifest.json").read_text())["leakage"]
    assert set(leakage) == {"validation_replies_in_train", "test_replies_in_train"}


SCENE = [  # replies over 40 characters stay in the scene as context, untrained
    "troupe.dataset.builder=scene",
    "troupe.dataset.max_chars=40",
    "datasets.0.message_field_training=train",
    "test_datasets.0.message_field_training=train",
]


def test_scene_samples_train_exactly_the_flagged_replies(demo):
    from collections import Counter

    from transformers import AutoTokenizer

    root, _ = demo
    troupe("new", "scene", "--from", "demo", root=root)
    troupe("convert", "scene", *SCENE, root=root)
    troupe("preprocess", "scene", *SCENE, root=root)
    flagged = Counter(
        m["content"] + "<turn|>"
        for split in ("train", "validation")
        for r in read_jsonl(root / "datasets" / "scene" / f"{split}.jsonl")
        for m in r["messages"]
        if m["role"] == "assistant" and m["train"]
    )
    unflagged = [
        m
        for r in read_jsonl(root / "datasets" / "scene" / "train.jsonl")
        for m in r["messages"]
        if m["role"] == "assistant" and not m["train"]
    ]
    assert unflagged, "the demo story has replies the filters keep out of training"
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "tiny")
    rows = prepared_rows(next((root / "datasets" / "scene" / "prepared").iterdir()))
    trained = Counter(tokenizer.decode(span) for row in rows for span in trained_spans(row["input_ids"], row["labels"]))
    assert trained == flagged


SYSTEM_KEYS = {
    "test_loss",
    "test_perplexity",
    "bleu4",
    "chrf",
    "rouge_l",
    "empty_rate",
    "punctuation_only_rate",
    "short_rate",
    "mean_chars",
    "length_ratio",
    "top_repeated",
    "distinct_1",
    "distinct_2",
    "copies_context_rate",
    "memorised_rate",
    "role_prefix_rate",
    "template_leak_rate",
    "ai_identity_rate",
    "probe_leaks",
}


@pytest.fixture(scope="module")
def evaluated(demo):
    """`troupe evaluate demo` once more, now that the demo has merged: three systems."""
    root, _ = demo
    done = troupe("evaluate", "demo", root=root)
    return root, done.stdout


def test_evaluate_scores_base_adapter_and_merged(evaluated):
    root, output = evaluated
    eval_dir = root / "outputs" / "demo" / "eval"
    assert {p.name for p in eval_dir.iterdir()} >= {"metrics.json", "generations.csv", "probes.json", "report.html"}
    scores = json.loads((eval_dir / "metrics.json").read_text())
    assert set(scores["systems"]) == {"base", "adapter", "merged"}
    for name, values in scores["systems"].items():
        assert SYSTEM_KEYS <= set(values), (name, SYSTEM_KEYS - set(values))
    assert scores["merge_parity"]["identical_replies"] == 1.0 and scores["merge_parity"]["max_logit_diff"] < 1e-3
    assert scores["style"]["available"] and 0 <= scores["style"]["held_out_accuracy"] <= 1
    assert set(scores["style"]["systems"]) == {"base", "adapter", "merged", "references"}
    assert "style adapter − base" in output and "perplexity" in output
    probes = json.loads((eval_dir / "probes.json").read_text())
    assert len(probes) == 4 and {"probe", "base", "adapter", "merged"} <= set(probes[0])
    header = (eval_dir / "generations.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "story,index,context,reference,base,adapter,merged"


def test_report_page_shows_the_summary_table(evaluated):
    import shutil as which
    import warnings
    from html.parser import HTMLParser

    root, _ = evaluated
    report = root / "outputs" / "demo" / "eval" / "report.html"
    chromium = which.which("chromium") or which.which("chromium-browser")
    if chromium:
        done = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                f"--user-data-dir={root / 'chromium'}",
                "--dump-dom",
                report.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        page, method = done.stdout, "rendered in headless Chromium"
    else:
        page, method = report.read_text(encoding="utf-8"), "parsed as HTML (Chromium is not installed)"
        warnings.warn(f"report check: {method}", stacklevel=1)
    print(f"report check: {method}")

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.in_summary, self.cells, self.images = False, [], 0

        def handle_starttag(self, tag, attrs):
            self.in_summary |= tag == "table" and ("id", "summary") in attrs
            self.images += tag == "img" and any(k == "src" and v.startswith("data:image/png") for k, v in attrs)

        def handle_endtag(self, tag):
            self.in_summary &= tag != "table"

        def handle_data(self, data):
            if self.in_summary and data.strip():
                self.cells.append(data.strip())

    parser = Cells()
    parser.feed(page)
    assert {"base", "adapter", "merged", "test loss", "BLEU-4", "style P(character)"} <= set(parser.cells), method
    assert parser.images == 2, method  # loss curves and the length histogram, inline


def test_compare_lists_runs_side_by_side(evaluated):
    root, _ = evaluated
    done = troupe("compare", "demo", str(root / "outputs" / "demo"), root=root)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["run", "test", "loss"] and len(lines) == 3
