"""converters.arknights on fixture files written for troupe: the same story in all four layouts
of ArknightsStoryJson gives exactly the same lines; broken files give counted rejects."""

import json
from pathlib import Path

import pytest

from troupe.converters.arknights import Options, parse_story, story_records

FIXTURES = Path(__file__).parent / "fixtures" / "arknights"
OPTIONS = Options(converter="arknights", files=["unused"])
EXPECTED = [  # (record id, speaker, text, kind)
    (3, None, "灯塔·第二夜", "onscreen"),  # animtext, tags removed
    (4, None, "海风把窗户吹得直响。", "narration"),  # leading spaces trimmed
    (5, "守灯人", "Dr.博士,你来得正好。", "speech"),  # {@nickname} and the space before the comma; figure_art ignored
    (6, "学徒", "灯油只剩半桶了！", "speech"),  # <color> tag removed, text kept
    (8, "守灯人", "半桶够用到天亮。先把灯芯剪短。", "speech"),  # literal \n folded
    (11, "学徒", "可是明天呢？", "speech"),  # multiline: three records, one line
    (12, None, "一小时后", "onscreen"),  # Subtitle; the clearing record adds nothing
    (14, None, "北风七级", "onscreen"),  # Sticker with a real newline; the removal adds nothing
    (16, "博士", "我去取油 / 我留下守灯", "choice"),  # Decision: the Doctor's words
    (18, "守灯人", "路滑，慢些走。", "speech"),  # full-width space
    (20, "守灯人", "......", "speech"),  # kept here; the dataset builder may filter it
    (23, "？？？", "灯……还亮着吗……", "speech"),
    (25, "博士", "我来看看。", "speech"),  # speaker {@nickname}; the empty-after-cleaning line 24 is dropped
    (26, "守灯人", "亮着。只要我在，它就亮着。", "speech"),
]
META = {"story_code": "LH-2", "story_name": "第二夜", "avg_tag": "行动后"}


def parse_file(name: str):
    path = FIXTURES / name
    return parse_story(json.loads(path.read_text(encoding="utf-8")), path.stem, name, OPTIONS)


@pytest.mark.parametrize(
    "name, meta",
    [
        ("layout_a_list.json", {}),
        ("layout_b_object.json", META),
        ("layout_c_event_figure_art.json", {**META, "event_name": "灯塔夜话"}),
        ("layout_d_single_line.json", {**META, "event_name": "灯塔夜话"}),
    ],
)
def test_every_layout_gives_the_same_lines(name, meta):
    lines, rejects = parse_file(name)
    assert [(line.index, line.speaker, line.text, line.kind) for line in lines] == EXPECTED
    assert rejects == [] and all(line.meta == meta for line in lines)


def test_first_decision_option_when_asked():
    path = FIXTURES / "layout_b_object.json"
    options = Options(converter="arknights", files=["unused"], decision="first", player="医生", nickname="Doc")
    lines, _ = parse_story(json.loads(path.read_text(encoding="utf-8")), "s", "s", options)
    assert ("医生", "我去取油") in [(line.speaker, line.text) for line in lines]
    assert "Dr.Doc,你来得正好。" in [line.text for line in lines]


def test_broken_records_are_rejected_one_by_one():
    lines, rejects = parse_file("broken_records.json")
    assert [(line.index, line.speaker, line.text) for line in lines] == [(0, "守灯人", "还好。"), (5, "学徒", "嗯。")]
    assert [(r.source, r.index, r.reason) for r in rejects] == [
        ("broken_records.json", 1, "'name' record has no attributes"),
        ("broken_records.json", 2, "'content' is int, not text"),
        ("broken_records.json", 3, "Decision has no 'options' text"),
        ("broken_records.json", 4, "speaker name is list, not text"),
    ]
    assert rejects[1].record == {"id": 2, "prop": "name", "attributes": {"name": "守灯人", "content": 7}}


def test_a_truncated_file_is_not_json():
    with pytest.raises(json.JSONDecodeError):
        json.loads((FIXTURES / "broken_truncated.json").read_text(encoding="utf-8"))


def test_a_storylist_that_is_not_a_list_is_not_a_story():
    with pytest.raises(ValueError, match="'storyList' is not a list"):
        story_records(json.loads((FIXTURES / "broken_storylist_not_list.json").read_text(encoding="utf-8")))
