"""End to end on the tiny local model: `make demo` for real (the README's first command), in a
throwaway project root: convert → tiny model → preprocess → train → evaluate → merge."""

import json
import os
import shutil
import subprocess

import pytest
from helpers import REPO, cli, debug_label_pairs, prepared_rows, run_make, trained_spans

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(REPO / "recipes", root / "recipes")
    done = run_make("demo", root=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root, done.stdout + done.stderr


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_prints_a_summary_with_base_and_adapter_side_by_side(demo):
    _, output = demo
    summary = output[output.index("demo summary") :]
    for row in ("data", "base", "adapter", "references (+)", "other voices (−)", "test loss", "style P(character)"):
        assert row in summary
    assert "style adapter − base" in summary and "held-out accuracy" in summary
    lines = summary.splitlines()
    for row in ("reference", "base", "adapter"):  # three test prompts, each with the three replies
        assert sum(line.startswith(f"    {row} ") for line in lines) == 3, row
    assert sum(line.startswith(("  met ", "  NOT met ")) for line in lines) == 8  # the targets, each judged
    assert "wall time" in summary and "replies with U+FFFD, every system 0 (0)" in summary
    assert "openai client  你是谁？ → " in summary  # the character answered through the official client


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
    cli("convert", "demo", root=root)
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
    rows = prepared_rows(next((root / "datasets" / ".prepared" / "demo").iterdir()))
    samples = sum(len(read_jsonl(root / "datasets" / "demo" / f"{split}.jsonl")) for split in ("train", "validation"))
    assert len(rows) == samples
    for row in rows:
        (span,) = trained_spans(row["input_ids"], row["labels"])  # exactly one trained run: the reply
        text = tokenizer.decode(span)
        assert text.endswith("<turn|>") and text[: -len("<turn|>")] in replies


def test_evaluate_wrote_metrics_and_generations(demo):
    root, _ = demo
    metrics = json.loads((root / "outputs" / "demo" / "eval" / "metrics.json").read_text())
    test_count = len(read_jsonl(root / "datasets" / "demo" / "test.jsonl"))
    assert metrics["test_samples"] == test_count
    for system in ("base", "adapter"):
        values = metrics["systems"][system]
        assert values["test_loss"] > 0 and values["test_perplexity"] > 1 and values["replies"] == test_count
        assert {"empty_rate", "short_rate", "mean_chars", "length_ratio", "top_repeated"} <= set(values)
    assert set(metrics["controls"]) == {"references", "other_voices"}
    assert metrics["controls"]["references"]["chrf"] == 100.0  # the references against themselves
    csv_text = (root / "outputs" / "demo" / "eval" / "generations.csv").read_text(encoding="utf-8")
    assert csv_text.splitlines()[0] == "story,index,context,reference,base,adapter,merged"


def test_the_demo_model_writes_broken_characters_unless_generation_is_guarded(demo):
    """Sampling as the recipe does, the trained demo model writes bytes that are not UTF-8 into some
    replies (a lead byte, then a new character); the evaluation, whose generation is guarded
    (troupe.decoding), wrote none into any of its replies."""
    import torch

    from troupe.evaluation.generation import load_model, prompt_text, stop_token_ids, test_cases
    from troupe.recipe import load_recipe

    root, _ = demo
    assert "\ufffd" not in (root / "outputs" / "demo" / "eval" / "generations.csv").read_text(encoding="utf-8")
    recipe, settings = load_recipe("demo", root=root), load_recipe("demo", root=root).spec.evaluate
    adapter = recipe.layout.adapter_dir
    model, tokenizer = load_model(str(root / "models" / "tiny"), adapter, adapter)
    prompts = [prompt_text(tokenizer, c) for c in test_cases(recipe.layout.split("test"))]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    torch.manual_seed(settings.seed)
    out = model.generate(
        **batch,
        max_new_tokens=settings.max_new_tokens,
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=stop_token_ids(model, tokenizer, ["<turn|>"]),
        pad_token_id=tokenizer.pad_token_id,
    )
    unguarded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert sum("\ufffd" in reply for reply in unguarded) >= 3


def test_the_adapter_speaks_more_like_the_character_than_the_base_between_the_controls(demo):
    root, _ = demo
    style = json.loads((root / "outputs" / "demo" / "eval" / "metrics.json").read_text())["style"]
    diff, scored = style["adapter_minus_base"], style["systems"]
    assert diff["mean"] > 0 and diff["low"] > 0, diff  # the 95% interval excludes 0
    assert scored["references"]["mean"] > scored["adapter"]["mean"] > scored["other_voices"]["mean"], scored
    assert style["informative"]  # the classifier separates the controls on this data


def test_degenerate_replies_get_no_score_and_identical_ones_no_interval(demo):
    """Hand-made replies on the demo's real test prompts and classifier: all empty → n/a; all the
    same → a mean without an interval."""
    from troupe.evaluation import SystemRun, score, summary_table
    from troupe.evaluation.generation import Reply, test_cases
    from troupe.recipe import load_recipe

    root, _ = demo
    recipe = load_recipe("demo", root=root)
    cases = test_cases(recipe.dataset_dir / "test.jsonl")
    train = read_jsonl(recipe.dataset_dir / "train.jsonl")

    def run(text: str) -> SystemRun:
        return SystemRun(loss={}, replies=[Reply(text, text)] * len(cases), probes=[])

    same = "先把病历拿来，我们一条一条对。"
    scores = score(recipe, cases, train, {"base": run(""), "adapter": run(same)})
    base, adapter, styled = scores["systems"]["base"], scores["systems"]["adapter"], scores["style"]
    assert base["bleu4"] is base["chrf"] is None and base["not_scored"].startswith(f"{len(cases)} of {len(cases)}")
    assert adapter["scored_replies"] == len(cases) and adapter["bleu4"] is not None
    assert styled["systems"]["base"]["mean"] is None and styled["adapter_minus_base"]["mean"] is None
    assert styled["systems"]["adapter"]["mean"] > 0 and styled["systems"]["adapter"]["low"] is None
    row = next(line for line in summary_table(scores).splitlines() if line.startswith("style P(character)"))
    assert row.count("n/a") == 1 and row.count("(no interval)") == 1 and row.count("[") == 2  # the two controls

    paired = score(recipe, cases, train, {"base": run("好。"), "adapter": run(same)})["style"]["adapter_minus_base"]
    assert paired["mean"] != 0 and paired["low"] is paired["high"] is None  # every difference is the same


def test_merged_model_loads_and_generates_with_the_trained_chat_template(demo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = demo
    merged, adapter = root / "outputs" / "demo" / "merged", root / "outputs" / "demo" / "adapter"
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
    resolved = yaml.safe_load((root / "outputs" / "demo" / "adapter" / "train.resolved.yaml").read_text())
    assert "troupe" not in resolved and resolved["bf16"] is False and resolved["lora_mlp_kernel"] is False
    assert resolved["dataset_prepared_path"].startswith("datasets/.prepared/demo/")


def test_each_story_is_written_readable_and_structured(demo):
    root, _ = demo
    stories = root / "datasets" / "demo" / "stories"
    assert sorted(p.name for p in stories.iterdir()) == [
        f"level_demo_0{i}.{ext}" for i in range(1, 9) for ext in ("jsonl", "txt")
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
    "sequence_len=4096",  # whole scenes: none longer than this, so Axolotl drops none of them
    "datasets.0.message_field_training=train",
    "test_datasets.0.message_field_training=train",
]


@pytest.fixture(scope="module")
def scene(demo):
    """`new scene --from demo`, converted into whole scenes and tokenised by `preprocess --debug` (one
    Axolotl run serves both tests below): the project root and what the preprocess printed."""
    root, _ = demo
    cli("new", "scene", "--from", "demo", root=root)
    cli("convert", "scene", *SCENE, root=root)
    done = cli("preprocess", "scene", "--debug", *SCENE, root=root)
    return root, done.stdout + done.stderr


def test_preprocess_debug_shows_which_tokens_are_trained(scene):
    from transformers import AutoTokenizer

    root, output = scene
    pairs = debug_label_pairs(output)
    tokenizer = AutoTokenizer.from_pretrained(root / "models" / "tiny")
    end_of_turn = tokenizer.convert_tokens_to_ids("<turn|>")
    trained = [token for label, token in pairs if label != -100]
    assert pairs and trained and trained[-1] == end_of_turn
    assert sum(label == -100 for label, _ in pairs) > len(trained)  # system and context are masked


def test_scene_samples_train_exactly_the_flagged_replies(scene):
    from collections import Counter

    from transformers import AutoTokenizer

    root, _ = scene
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
    rows = prepared_rows(next((root / "datasets" / ".prepared" / "scene").iterdir()))
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
    """The demo merges before it evaluates: three systems, and its output has the evaluation's table."""
    return demo


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
    assert set(scores["style"]["systems"]) == {"base", "adapter", "merged", "references", "other_voices"}
    assert "style adapter − base" in output and "perplexity" in output
    probes = json.loads((eval_dir / "probes.json").read_text())
    assert [p["kind"] for p in probes] == ["red team"] * 4 + ["identity"] * 10
    assert all({"probe", "base", "adapter", "merged"} <= set(p) for p in probes)
    assert scores["systems"]["adapter"]["identity"]["probes"] == 10
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
    done = cli("compare", "demo", str(root / "outputs" / "demo"), root=root)
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "system", "test", "loss"] and len(lines) == 1 + 2 * 6
    systems = [line.split()[1] for line in lines[1:7]]
    assert systems == ["references", "base", "adapter", "merged", "other", "informative"]  # between the controls
    evaluated = json.loads((root / "outputs" / "demo" / "eval" / "metrics.json").read_text())["style"]["systems"]
    assert f"{evaluated['adapter']['mean']:.2f} [" in lines[3]  # the summary's style cell, interval included


@pytest.fixture(scope="module")
def server(demo):
    """`troupe serve demo` on a free port of 127.0.0.1, as a user would start it."""
    import socket
    import sys
    import time

    import requests

    root, _ = demo
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "troupe", "serve", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if requests.get(f"{base}/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.5)
    yield base
    process.terminate()
    process.wait(timeout=30)


def ask(base: str, **body):
    import requests

    payload = {"model": "demo", "messages": [{"role": "user", "content": "雾散了吗？"}], "max_tokens": 6, **body}
    return requests.post(f"{base}/v1/chat/completions", json=payload, timeout=120)


def test_server_lists_the_model_and_answers(server):
    import requests

    assert requests.get(f"{server}/v1/models", timeout=10).json()["data"][0]["id"] == "demo"
    reply = ask(server).json()
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["completion_tokens"] >= 1


def test_server_streams_the_same_greedy_reply(server):
    import requests

    plain = ask(server).json()["choices"][0]["message"]["content"]
    payload = {
        "model": "demo",
        "messages": [{"role": "user", "content": "雾散了吗？"}],
        "max_tokens": 6,
        "stream": True,
    }
    with requests.post(f"{server}/v1/chat/completions", json=payload, stream=True, timeout=120) as response:
        events = [
            line[len("data: ") :] for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")
        ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert chunks[0] == {"role": "assistant"} and "".join(c.get("content", "") for c in chunks).strip() == plain


def test_server_answers_fifty_concurrent_requests(server):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(
            pool.map(
                lambda i: ask(server, messages=[{"role": "user", "content": f"第{i}问"}], max_tokens=3).status_code,
                range(50),
            )
        )
    assert codes == [200] * 50


def test_server_refuses_bad_requests_and_stays_up(server):
    import requests

    url = f"{server}/v1/chat/completions"
    bad_json = requests.post(url, data="{not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert bad_json.status_code == 400 and "error" in bad_json.json()
    assert ask(server, model="gpt-4").status_code == 404
    assert ask(server, max_tokens=10**6).status_code == 400
    assert ask(server, messages=[]).status_code == 400
    assert ask(server, messages=[{"role": "wizard", "content": "x"}]).status_code == 400
    assert requests.get(f"{server}/health", timeout=10).json()["status"] == "ok"
    assert ask(server).status_code == 200


def test_system_prompt_applied_unless_the_request_brings_one(demo):
    from troupe.recipe import load_recipe
    from troupe.serve import Character

    root, _ = demo
    character = Character(load_recipe("demo", root=root))
    with_recipe = character.tokenizer.decode(character.prompt_ids([{"role": "user", "content": "你好"}]))
    own = character.tokenizer.decode(
        character.prompt_ids([{"role": "system", "content": "另一个设定"}, {"role": "user", "content": "你好"}])
    )
    assert "你正在扮演《雾港夜话》中的闻钟" in with_recipe and "另一个设定" in own and "雾港夜话" not in own


def test_terminal_chat_keeps_history_resets_and_exits(demo):
    root, _ = demo
    env = {**os.environ, "TROUPE_ROOT": str(root)}
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "troupe", "chat", "demo"],
        input="你好\n/reset\n雾大吗？\n/exit\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0
    assert done.stdout.count("闻钟> ") == 2 and "(forgotten)" in done.stdout


def test_vllm_command_for_the_merged_model(demo):
    root, _ = demo
    done = cli("vllm", "demo", root=root)
    assert done.stdout.strip() == f"vllm serve {root / 'outputs' / 'demo' / 'merged'} --served-model-name demo"


@pytest.fixture(scope="module")
def exported(demo):
    root, _ = demo
    done = cli("export", "demo", root=root)
    return root, root / "outputs" / "demo" / "export", done.stdout


def test_export_writes_the_gguf_files_a_modelfile_and_what_they_were_made_from(exported):
    from troupe import provenance

    root, folder, output = exported
    names = {"demo-f16.gguf", "demo-q8_0.gguf", "demo-lora-f16.gguf", "base-f16.gguf", "Modelfile", "troupe.json"}
    assert {p.name for p in folder.iterdir()} == names
    record = json.loads((folder / "troupe.json").read_text())
    adapter = json.loads((root / "outputs" / "demo" / "adapter" / "troupe.json").read_text())
    assert record["adapter_sha256"] == adapter["adapter_sha256"]
    assert record["merged_sha256"] == provenance.weights_sha256(root / "outputs" / "demo" / "merged")
    assert all(entry["bytes"] > 0 and len(entry["sha256"]) == 64 for entry in record["files"].values())
    assert "llama.cpp" in output and "f16" in output  # the check's outcome is told (its numbers: troupe.json, below)


def test_llama_cpp_reads_the_exports_as_transformers_reads_the_merged_model(exported):
    """The targets of the export, on the tiny model (8 test prompts): the GGUF's own chat template
    gives transformers' prompt tokens; teacher-forced top-1 agreement f16 ≥ 99%, q8_0 ≥ 97%, base +
    LoRA ≥ 99%; greedy replies identical for f16 on ≥ 90% of prompts."""
    _, folder, _ = exported
    checked = json.loads((folder / "troupe.json").read_text())["llama_cpp_check"]
    assert all(checked[name]["same_prompt_tokens"] == 1.0 for name in ("f16", "q8_0", "base-f16 + lora"))
    assert checked["f16"]["top1_agreement"] >= 0.99 and checked["f16"]["same_greedy"] >= 0.9
    assert checked["q8_0"]["top1_agreement"] >= 0.97
    assert checked["base-f16 + lora"]["top1_agreement"] >= 0.99


def test_the_modelfile_template_renders_what_training_rendered(exported):
    from transformers import AutoTokenizer

    from troupe.export import adds_bos

    root, folder, _ = exported
    text = (folder / "Modelfile").read_text(encoding="utf-8")
    assert text.splitlines()[1] == "FROM ./demo-q8_0.gguf" and 'PARAMETER stop "<turn|>"' in text
    template = text.split('TEMPLATE """')[1].split('"""')[0]
    system = text.split('SYSTEM """')[1].split('"""')[0]
    tokenizer = AutoTokenizer.from_pretrained(root / "outputs" / "demo" / "merged")
    turns = [{"role": "system", "content": system}, {"role": "user", "content": "灯还亮着吗？"}]
    expected = tokenizer.apply_chat_template([*turns, {"role": "assistant", "content": "亮着。"}], tokenize=False)
    filled = template.replace("{{ .System }}", system).replace("{{ .Prompt }}", "灯还亮着吗？")
    filled = filled.replace("{{ .Response }}", "亮着。")
    bos = tokenizer.bos_token if adds_bos(folder / "demo-q8_0.gguf") else ""
    assert bos + filled == expected


def test_export_refuses_a_merged_model_of_an_older_adapter(exported):
    root, folder, _ = exported
    record_path = root / "outputs" / "demo" / "merged" / "troupe.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "adapter_sha256": "0" * 64}))
    try:
        done = cli("export", "demo", root=root, check=False)
    finally:
        record_path.write_text(json.dumps(record))
    assert done.returncode == 1
    assert "outputs/demo/merged" in done.stderr and "make merge CHARACTER=demo" in done.stderr  # the file, the fix
    assert (folder / "troupe.json").is_file()  # the previous export is left as it was
