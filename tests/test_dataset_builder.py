"""troupe.dataset: lines in, exact samples out; splits; byte-identical output."""

import pytest

from troupe.chat import user_turn
from troupe.dataset import (
    character_samples,
    is_punctuation_only,
    scene_samples,
    split_samples,
    split_sizes,
)
from troupe.errors import TroupeError
from troupe.records import Line, Sample
from troupe.schema import Split, TroupeSpec

SPEC = TroupeSpec.parse(
    {
        "character": {"name": "闻钟", "aliases": ["闻医生"]},
        "source": {"converter": "arknights"},
        "dataset": {"context_lines": 2, "min_chars": 2, "max_chars": 10, "drop_punctuation_only": True},
        "prompt": {"system": "你是闻钟。", "user_template": "上下文:\n{context}\n请以{character}的口吻回复。"},
    }
)


def line(speaker, text, index, kind=None, story="a"):
    return Line(speaker, text, kind or ("speech" if speaker else "narration"), story, index, f"{story}.json")


def test_context_is_previous_lines_of_the_same_story_labelled():
    lines = [
        line(None, "雾起。", 0),
        line("小禾", "老师！", 1),
        line(None, "三天后", 2, "onscreen"),
        line("闻钟", "说下去。", 3),
        line("闻医生", "先坐下。", 0, story="b"),
    ]
    samples, dropped = character_samples(lines, SPEC)
    assert samples[0] == Sample(
        messages=[
            {"role": "system", "content": "你是闻钟。"},
            {"role": "user", "content": "上下文:\n[小禾]:老师！\n[字幕]:三天后\n请以闻钟的口吻回复。"},
            {"role": "assistant", "content": "说下去。"},
        ],
        meta={
            "source": "a.json",
            "index": 3,
            "story": "a",
            "story_code": None,
            "story_name": None,
            "avg_tag": None,
            "event_name": None,
        },
    )
    assert len(samples) == 1  # the alias's line in story b has no context line before it
    assert dropped == {"too_little_context": 1}


def test_filters_are_counted_by_reason():
    lines = [
        line("小禾", "在吗", 0),
        line("闻钟", "好", 1),
        line("闻钟", "这一句实在是太长太长了", 2),
        line("闻钟", "……", 3),
        line("闻钟", "可以。", 4),
        line("小禾", "在吗", 5),
        line("闻钟", "好", 6),
        line("小禾", "可以。", 7),
        line("闻钟", "可以。", 8),
    ]
    samples, dropped = character_samples(lines, SPEC)
    assert [s.messages[-1]["content"] for s in samples] == ["可以。", "可以。"]
    assert dropped == {"too_short": 2, "too_long": 1, "punctuation_only": 1}


def test_exact_duplicates_are_dropped_once_seen():
    lines = [
        line("小禾", "在吗", 0),
        line("闻钟", "在。", 1),
        line("小禾", "在吗", 0, story="b"),
        line("闻钟", "在。", 1, story="b"),
    ]
    samples, dropped = character_samples(lines, SPEC)
    assert len(samples) == 1 and dropped == {"duplicate": 1}


def test_punctuation_only():
    assert is_punctuation_only("......") and is_punctuation_only("——") and is_punctuation_only("？！")
    assert not is_punctuation_only("嗯。") and not is_punctuation_only("")


def test_user_template_braces_in_story_text_are_not_interpreted():
    assert user_turn("{context}|{character}", "{0} {x} {{", "闻钟")["content"] == "{0} {x} {{|闻钟"


def test_split_sizes_match_the_seed():
    assert split_sizes(3350, Split()) == (2680, 335, 335)
    assert split_sizes(7, Split()) == (4, 1, 2)  # a split the recipe uses is never empty
    assert split_sizes(7, Split(train=0.9, validation=0.1, test=0.0)) == (6, 1, 0)


def _samples(n, stories=5):
    return [Sample([{"role": "assistant", "content": str(i)}], {"story": f"s{i % stories}"}) for i in range(n)]


def test_split_is_a_seeded_partition():
    samples = _samples(50)
    first, again = split_samples(samples, Split()), split_samples(samples, Split())
    assert first == again
    assert sorted(s.messages[0]["content"] for part in first.values() for s in part) == sorted(
        str(i) for i in range(50)
    )
    assert [len(first[k]) for k in ("train", "validation", "test")] == [40, 5, 5]
    assert split_samples(samples, Split(seed=1)) != first


def test_split_by_story_keeps_each_story_in_one_split():
    parts = split_samples(_samples(100, stories=10), Split(by="story"))
    stories = {name: {s.meta["story"] for s in part} for name, part in parts.items()}
    assert not (stories["train"] & stories["test"]) and not (stories["train"] & stories["validation"])
    assert sum(map(len, parts.values())) == 100
    assert [len(parts[name]) for name in ("train", "validation", "test")] == [80, 10, 10]


@pytest.mark.parametrize("sizes", [(90, 10, 6), (3, 2, 1), (50, 50, 50)])
def test_split_by_story_never_leaves_a_used_split_empty(sizes):
    """Three stories of very different sizes (the demo's shape): each split still gets one."""
    samples = [Sample(None, {"story": f"s{k}"}, str(i)) for k, size in enumerate(sizes) for i in range(size)]
    for seed in range(20):
        parts = split_samples(samples, Split(by="story", seed=seed))
        assert all(parts[name] for name in ("train", "validation", "test")), (seed, sizes)
        assert sum(map(len, parts.values())) == sum(sizes)


def test_split_by_story_with_too_few_stories_says_so():
    with pytest.raises(TroupeError, match="need a story each, but the source has 2"):
        split_samples(_samples(10, stories=2), Split(by="story"))


def test_sharegpt_output_format():
    sample = Sample(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
        {"story": "x"},
    )
    assert sample.to_json("sharegpt") == {
        "conversations": [
            {"from": "system", "value": "s"},
            {"from": "human", "value": "u"},
            {"from": "gpt", "value": "a"},
        ],
        "meta": {"story": "x"},
    }


SCENE = TroupeSpec.parse(
    {
        "character": {"name": "闻钟"},
        "source": {"converter": "arknights"},
        "dataset": {"builder": "scene", "scene_lines": 4, "min_chars": 1},
        "prompt": {"system": "你是闻钟。"},
    }
)


def test_scene_windows_alternate_sides_and_keep_filtered_replies_as_context():
    lines = [
        line("小禾", "在吗", 0),
        line("闻钟", "在。", 1),
        line("闻钟", "说吧。", 2),
        line(None, "雾起。", 3),
        line("小禾", "我怕", 4),
        line("闻钟", "……", 5),
        line("铁砧", "走了", 6),
        line("闻钟", "嗯，走吧。", 7),
        line("小禾", "等等", 8),
    ]
    samples, dropped = scene_samples(lines, SCENE)
    system = {"role": "system", "content": "你是闻钟。", "train": False}
    assert [s.messages for s in samples] == [
        [
            system,
            {"role": "user", "content": "[小禾]:在吗", "train": False},
            {"role": "assistant", "content": "在。\n说吧。", "train": True},
        ],
        [
            system,
            {"role": "user", "content": "[旁白]:雾起。\n[小禾]:我怕", "train": False},
            {"role": "assistant", "content": "……", "train": False},
            {"role": "user", "content": "[铁砧]:走了", "train": False},
            {"role": "assistant", "content": "嗯，走吧。", "train": True},
        ],
    ]
    assert samples[1].meta["index"] == 3 and samples[1].replies == ["嗯，走吧。"]
    assert dropped == {"punctuation_only": 1}


def test_scene_drops_replies_with_nothing_before_them():
    lines = [line("闻钟", "开场。", 0), line("小禾", "嗯", 1), line("闻钟", "好。", 2)]
    samples, dropped = scene_samples(lines, SCENE)
    assert len(samples) == 1 and samples[0].messages[1]["content"] == "[小禾]:嗯"
    assert dropped == {"too_little_context": 1}


def test_speaker_table_counts_lines_per_speaker():
    from troupe.dataset import speaker_table

    lines = [line("闻钟", "甲", 0), line("小禾", "乙", 1), line("闻钟", "丙", 2), line(None, "丁", 3)]
    table = speaker_table(lines, top=2).splitlines()
    assert table[1].split() == ["1", "2", "50.0%", "闻钟"]
    assert table[2].split()[-1] in ("小禾", "(narration)") and len(table) == 4
    assert table[-1] == "3 speakers, 4 lines"
