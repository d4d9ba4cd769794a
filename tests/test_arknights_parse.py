"""converters.arknights: one story in, exact lines out (fixtures written for troupe)."""

import pytest

from troupe.converters.arknights import Options, clean_text, parse_story, story_records
from troupe.records import Line

OPTIONS = Options(converter="arknights", files=["x.json"])


def lines_of(data, options=OPTIONS):
    lines, rejects = parse_story(data, "story", "s.json", options)
    return [(line.speaker, line.text, line.kind) for line in lines], rejects


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("   知道了。", "知道了。"),
        ("<color=#ff6600>染色</color>的字", "染色的字"),
        ("第一行\\n第二行", "第一行第二行"),
        ("first line\\nsecond", "first line second"),
        ("真的\n换行", "真的换行"),
        ("Dr.{@nickname} ,你好", "Dr.博士,你好"),
        ("{@Nickname}，醒醒。", "博士，醒醒。"),
        ("全角　空格", "全角空格"),
        ("  many   spaces  here ", "many spaces here"),
        ("<p=1>雾港</p>", "雾港"),
    ],
)
def test_clean_text(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_list_layout_speech_and_narration():
    data = [
        {"id": 0, "prop": "HEADER", "attributes": {"key": "title_test"}},
        {"id": 1, "prop": "name", "attributes": {"name": "闻钟", "content": "  说下去。"}},
        {"id": 2, "prop": "name", "attributes": {"content": "  雾从河面漫过来。"}},
        {"id": 3, "prop": "Dialog", "attributes": {}},
    ]
    lines, rejects = parse_story(data, "story", "s.json", OPTIONS)
    assert lines == [
        Line("闻钟", "说下去。", "speech", "story", 1, "s.json"),
        Line(None, "雾从河面漫过来。", "narration", "story", 2, "s.json"),
    ]
    assert rejects == []


def test_object_layout_keeps_story_metadata_and_ignores_figure_art():
    data = {
        "storyCode": "FG-2",
        "storyName": "药与潮",
        "avgTag": "行动前",
        "eventName": "雾港夜话",
        "storyList": [
            {
                "id": 5,
                "prop": "name",
                "figure_art": "char_other_1",
                "attributes": {"name": "洛伊", "content": "信到了。"},
            }
        ],
    }
    lines, _ = parse_story(data, "story", "s.json", OPTIONS)
    assert [(line.speaker, line.text) for line in lines] == [("洛伊", "信到了。")]
    assert lines[0].meta == {
        "story_code": "FG-2",
        "story_name": "药与潮",
        "avg_tag": "行动前",
        "event_name": "雾港夜话",
    }


def test_multiline_counted_once_and_prop_case_insensitive():
    data = [
        {"id": 1, "prop": "multiline", "attributes": {"name": "小禾", "content": "先是"}},
        {
            "id": 2,
            "prop": "Multiline",
            "attributes": {"name": "小禾", "content": "后来", "end": True, "joined": "先是后来"},
        },
        {"id": 3, "prop": "NAME", "attributes": {"name": "闻钟", "content": "嗯。"}},
    ]
    assert lines_of(data)[0] == [("小禾", "先是后来", "speech"), ("闻钟", "嗯。", "speech")]


def test_onscreen_text_kinds_and_clearing_records():
    data = [
        {"id": 1, "prop": "animtext", "attributes": {"name": "<p=1>", "content": "<p=1>第七泊位</p>"}},
        {"id": 2, "prop": "Subtitle", "attributes": {"text": "三天后", "x": 0}},
        {"id": 3, "prop": "Subtitle", "attributes": {}},
        {"id": 4, "prop": "Sticker", "attributes": {"id": "st1", "text": "医务室"}},
        {"id": 5, "prop": "Sticker", "attributes": {"id": "st1"}},
    ]
    assert lines_of(data)[0] == [
        (None, "第七泊位", "onscreen"),
        (None, "三天后", "onscreen"),
        (None, "医务室", "onscreen"),
    ]


@pytest.mark.parametrize("mode, text", [("all", "留下 / 离开"), ("first", "留下")])
def test_decision_is_the_players_line(mode, text):
    data = [
        {"id": 1, "prop": "Decision", "attributes": {"options": "留下;离开", "values": "1;2"}},
        {"id": 2, "prop": "Predicate", "attributes": {"references": "1"}},
    ]
    options = Options(converter="arknights", files=["x"], decision=mode, player="医生")
    assert lines_of(data, options)[0] == [("医生", text, "choice")]


def test_broken_records_are_rejected_with_reasons_not_dropped():
    data = [
        {"id": 1, "prop": "name"},
        {"id": 2, "prop": "name", "attributes": {"name": "闻钟", "content": 42}},
        "not a record",
        {"id": 4, "prop": "name", "attributes": {"name": "闻钟", "content": "好。"}},
    ]
    lines, rejects = lines_of(data)
    assert lines == [("闻钟", "好。", "speech")]
    assert [(r.index, r.reason) for r in rejects] == [
        (1, "'name' record has no attributes"),
        (2, "'content' is int, not text"),
        (2, "record is not an object"),
    ]


def test_lines_empty_after_cleaning_are_dropped():
    data = [{"id": 1, "prop": "name", "attributes": {"name": "闻钟", "content": "  <i></i>  "}}]
    assert lines_of(data)[0] == []


@pytest.mark.parametrize(
    "data, message",
    [
        ({"storyList": {"id": 1}}, "'storyList' is not a list"),
        ({"lang": "zh_CN"}, "not a story"),
        ("text", "not a story"),
    ],
)
def test_not_a_story(data, message):
    with pytest.raises(ValueError, match=message):
        story_records(data)
