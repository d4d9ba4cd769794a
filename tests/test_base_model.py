"""The demo's base model: trained on every speaker's story lines in the recipe's chat format, never on
a line the character is later scored on; same story → same files."""

import pytest

from troupe import dataset, provenance
from troupe.demo import tiny
from troupe.demo.run import base_conversations
from troupe.files import read_jsonl, sha256_file
from troupe.recipe import load_recipe
from troupe.records import Line

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(project):
    recipe = load_recipe("demo")
    dataset.build(recipe, "troupe convert demo")
    return recipe


def test_story_samples_take_every_speaker_and_leave_out_held_out_lines():
    spec = load_recipe("demo").spec
    story = [
        Line("小禾", "师父，他醒了！", "speech", "s", 0, "f"),
        Line("闻钟", "我看见了。", "speech", "s", 1, "f"),
        Line(None, "雾散了一些。", "narration", "s", 2, "f"),
        Line("铁砧", "醒了就好。", "speech", "s", 3, "f"),
        Line("闻钟", "不必着急。", "speech", "s", 4, "f"),
    ]
    samples = dataset.story_samples(story, spec, leave_out={"我看见了。"})
    assert [s.messages[-1]["content"] for s in samples] == ["醒了就好。", "不必着急。"]  # the first line has no context
    assert samples[0].messages[1]["content"].endswith("[小禾]:师父，他醒了！\n[旁白]:雾散了一些。")
    assert samples[0].messages[0]["content"] == spec.prompt.system  # the recipe's own chat format


def test_the_base_never_sees_a_validation_or_test_reply(demo):
    conversations = base_conversations(demo)
    held_out = {
        r["messages"][-1]["content"]
        for split in ("validation", "test")
        for r in read_jsonl(demo.dataset_dir / f"{split}.jsonl")
    }
    speakers = {line.split("]:")[0] for c in conversations for line in c[1]["content"].splitlines() if "]:" in line}
    assert len(conversations) > 400 and {"[小禾", "[铁砧", "[闻钟"} <= speakers
    for conversation in conversations:
        assert not any(reply in message["content"] for message in conversation for reply in held_out if len(reply) > 8)
        assert conversation[-1]["content"] not in held_out


def test_same_story_same_files(demo, monkeypatch, tmp_path):
    """Two builds of the trained base (2 steps here, to be quick) write byte-identical weights."""
    monkeypatch.setitem(tiny.PRETRAINING, "max_steps", 2)
    conversations = base_conversations(demo)[:32]
    texts = [m["content"] for c in conversations for m in c]
    for out in (tmp_path / "a", tmp_path / "b"):
        assert tiny.build_tiny_model(out, texts, "llama", conversations)
    assert sha256_file(tmp_path / "a" / "model.safetensors") == sha256_file(tmp_path / "b" / "model.safetensors")
    record = provenance.read_record(tmp_path / "a", "tiny-model")
    assert record["trained"]["steps"] == 2 and record["trained"]["conversations"] == 32
    assert not tiny.build_tiny_model(tmp_path / "a", texts, "llama", conversations)  # current: nothing to do


def test_the_base_learns_the_story_not_the_system_prompt():
    tokenizer = tiny.train_tokenizer(["你正在扮演闻钟。", "[小禾]:师父？", "我在。"] * 5, 300)
    conversation = [
        {"role": "system", "content": "你正在扮演闻钟。"},
        {"role": "user", "content": "[小禾]:师父？"},
        {"role": "assistant", "content": "我在。"},
    ]
    row = tiny._story_tokens(tokenizer, conversation)
    trained = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    assert "扮演" not in trained and "[小禾]:师父？" in trained and "我在。<turn|>" in trained
