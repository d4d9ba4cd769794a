"""Inputs as people really have them, one example in, exact records out (the project's own
fixtures): on-screen text in parts, message content as a list of parts, conversations that open
with the character's greeting, a `Question,Answer` header, pretty-printed "JSONL". And what must
never crash or vanish: bytes that are not UTF-8, NUL, 100,000-deep nesting, a 5000-digit integer,
a truncated array, a file that wraps its records, a source whose every record is rejected."""

import json
import re
import shutil
from pathlib import Path

import pytest

from troupe import dataset
from troupe.converters import ReadContext, ReadResult, arknights, messages, poetry, qa_pairs, script, sharegpt
from troupe.converters.arknights import clean_text
from troupe.errors import TroupeError
from troupe.files import jsonl_text
from troupe.recipe import load_recipe
from troupe.records import Reject, reject_summary
from troupe.schema import TroupeSpec

FIXTURES = Path(__file__).parent / "fixtures"
SYSTEM = "你是陪伴者。"


def context(root: Path, system: str = SYSTEM) -> ReadContext:
    return ReadContext(root=root, cache_dir=root / "cache", system_prompt=system)


def fixture(root: Path, name: str) -> str:
    """Copy a fixture into the test's project root; its name there."""
    source = next(FIXTURES.glob(f"*/{name}"))
    shutil.copy(source, root / name)
    return name


def reasons(result: ReadResult) -> list[tuple]:
    return [(r.index, r.reason) for r in result.rejects]


# ---- Arknights on-screen text in parts -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("<p=1>罗德岛医疗部</><p=2>1099年1月27日 11:38 A.M.</>", "罗德岛医疗部 / 1099年1月27日11:38 A.M."),
        ("<p=2>1062年4月21日    谷雨</>", "1062年4月21日谷雨"),
        ("<p=1>East Pier</><p=2>Same day,   dawn</>", "East Pier / Same day, dawn"),
        ("这是<color=#f00>红色</>的字", "这是红色的字"),  # a bare closer inside a line does not split it
    ],
)
def test_onscreen_parts_become_readable_text(raw, cleaned):
    assert clean_text(raw) == cleaned


def test_a_story_with_location_stamps(tmp_path):
    name = fixture(tmp_path, "animtext_parts.json")
    result = arknights.read(arknights.Options(converter="arknights", files=[name]), context(tmp_path))
    assert [(line.index, line.speaker, line.text, line.kind) for line in result.lines] == [
        (1, None, "北岬灯塔 / 霜月初七·夜11:40 P.M.", "onscreen"),
        (2, None, "海雾压着礁石，灯室里只剩风声。", "narration"),
        (3, "守灯人", "灯油还够撑到天亮吗？", "speech"),
        (5, None, "三天后", "onscreen"),
        (6, "学徒", "够，我刚添过一整桶。", "speech"),
        (7, None, "East Pier / Same day, dawn", "onscreen"),
        (9, "学徒", "收好了，船也靠岸了。", "speech"),
    ]
    assert reasons(result) == [(8, "attributes.content: control character U+0000 at character 4")]


# ---- conversations: content parts and greetings ----------------------------------------------------


def test_content_as_parts_a_greeting_first_and_records_that_cannot_be_used(tmp_path):
    name = fixture(tmp_path, "chats_content_parts.jsonl")
    result = messages.read(messages.Options(converter="messages", files=[name]), context(tmp_path))
    system = {"role": "system", "content": SYSTEM}
    assert [(s.meta["index"], s.messages) for s in result.samples] == [
        (
            1,
            [
                system,
                {"role": "user", "content": "今天腿有点酸。"},
                {"role": "assistant", "content": "是不是走得多了？坐下歇歇，我陪您聊会儿。"},
            ],
        ),
        (
            2,
            [
                system,
                {
                    "role": "user",
                    "content": "我今天去菜市场了。\n买了两斤橘子。",
                },  # OpenAI parts, joined as vLLM joins them
                {"role": "assistant", "content": "橘子正当季，甜不甜？"},
            ],
        ),
        (
            3,
            [
                system,
                {"role": "user", "content": "孙女下周回来。"},  # LLaMA-Factory's {"type": "text", "value"}
                {"role": "assistant", "content": "那可太好了！您准备给她做什么好吃的？"},
            ],
        ),
        (
            4,
            [
                system,
                {
                    "role": "assistant",
                    "content": "您好呀，我是小暖，今天过得怎么样？",
                },  # the greeting, kept and trained
                {"role": "user", "content": "还行，就是有点闷。"},
                {"role": "assistant", "content": "闷的时候，跟我说说话就好。"},
            ],
        ),
    ]
    assert reasons(result) == [
        (5, "turn 0 (user): content part 1 is 'image_url', not text (troupe trains on text only)"),
        (6, "messages.0.content: byte 0xE9 at character 7 is not UTF-8 (save the file as UTF-8)"),
        (7, "messages.0.content: control character U+0000 at character 4"),
        (8, "turn 0 (user): content part 0 has no 'text' or 'value' string"),
    ]
    assert result.records == 8 and result.adjusted == {"greeting_kept": 1}
    jsonl_text(r.to_json() for r in result.rejects).encode("utf-8")  # rejects.jsonl can be written


@pytest.mark.parametrize(
    "mode, kept, rejected, adjusted",
    [
        ("keep", ["rp-1", "rp-2", "rp-3", "rp-4"], [], {"greeting_kept": 3}),
        ("drop", ["rp-1", "rp-2", "rp-3"], [3], {"greeting_dropped": 2}),  # rp-4 is only a greeting
        ("reject", ["rp-3"], [0, 1, 3], {}),
    ],
)
def test_greeting_first_role_play_is_kept_dropped_or_rejected(tmp_path, mode, kept, rejected, adjusted):
    name = fixture(tmp_path, "sharegpt_greetings.json")
    options = sharegpt.Options(converter="sharegpt", files=[name], greeting=mode)
    result = sharegpt.read(options, context(tmp_path, system=""))
    records = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    assert [records[s.meta["index"]]["id"] for s in result.samples] == kept
    assert [r.index for r in result.rejects] == rejected
    assert result.adjusted == adjusted


def test_a_greeting_becomes_the_first_assistant_turn_after_the_system_prompt(tmp_path):
    name = fixture(tmp_path, "sharegpt_greetings.json")
    result = sharegpt.read(sharegpt.Options(converter="sharegpt", files=[name]), context(tmp_path, system="Be Wren."))
    assert result.samples[1].messages == [
        {"role": "system", "content": "Be Wren."},
        {"role": "assistant", "content": "Another late one? Sit by the stove.\nCoffee's strong tonight."},
        {"role": "user", "content": "Thanks. Is the harbour closed?"},
        {"role": "assistant", "content": "Closed to fools. We sail at six."},
    ]
    assert result.samples[1].replies[0].startswith("Another late one?")  # trained like any reply


# ---- Q/A headers ---------------------------------------------------------------------------------


def test_a_capitalised_header_crlf_and_rows_with_nul_or_latin1(tmp_path):
    name = fixture(tmp_path, "qa_capitalised.csv")
    result = qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=[name]), context(tmp_path, system=""))
    assert [(s.meta["index"], [m["content"] for m in s.messages]) for s in result.samples] == [
        (2, ["What is a lighthouse for?", "To warn ships off the rocks, and to guide them home."]),
        (3, ["Why does fog muffle sound?", "Water droplets scatter it,\nso the foghorn is pitched low."]),
        (7, ["How tall is the tower?", "Thirty metres, give or take a gull."]),
    ]
    assert reasons(result) == [
        (5, "Answer: control character U+0000 at character 9"),
        (6, "Answer: byte 0xE9 at character 13 is not UTF-8 (save the file as UTF-8)"),
    ]


def test_a_header_without_the_columns_is_one_error_naming_them(tmp_path):
    (tmp_path / "qa.tsv").write_text("Prompt\tReply\nWhy?\tBecause.\n", encoding="utf-8")
    with pytest.raises(TroupeError, match=re.escape("qa.tsv:1: the header has no 'question' and 'answer' column")):
        qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=["qa.tsv"]), context(tmp_path))
    options = qa_pairs.Options(converter="qa_pairs", files=["qa.tsv"], question_field="PROMPT", answer_field="reply")
    assert len(qa_pairs.read(options, context(tmp_path)).samples) == 1  # configured names, any case


# ---- JSON files that are not one record per line ---------------------------------------------------


def test_pretty_printed_jsonl_is_read_and_said_so(tmp_path, capsys):
    name = fixture(tmp_path, "chats_pretty_printed.jsonl")
    result = messages.read(messages.Options(converter="messages", files=[name]), context(tmp_path, system=""))
    assert [(s.meta["index"], s.messages[0]["content"]) for s in result.samples] == [
        (1, "What's the weather at sea?"),
        (13, "Any ships tonight?"),
        (30, "Should I bring a coat?"),
    ]
    assert result.rejects == []
    assert "chats_pretty_printed.jsonl: 3 pretty-printed JSON record(s), not one per line" in capsys.readouterr().out


def test_a_truncated_array_fails_naming_the_place_and_what_came_before(tmp_path):
    name = fixture(tmp_path, "poems_truncated.json")
    message = "poems_truncated.json:46:7: the file is truncated; 5 complete record(s) come before this point"
    with pytest.raises(TroupeError, match=re.escape(message)):
        poetry.read(poetry.Options(converter="poetry", files=[name]), context(tmp_path))


def test_a_broken_array_fails_naming_the_place(tmp_path):
    (tmp_path / "c.json").write_text('[\n{"messages": []},\n{"messages": []}\n{"messages": []}\n]', encoding="utf-8")
    message = "c.json:4:1: not readable JSON (expected ',' or ']' after a record); 2 complete record(s)"
    with pytest.raises(TroupeError, match=re.escape(message)):
        messages.read(messages.Options(converter="messages", files=["c.json"]), context(tmp_path))


def test_a_file_wrapping_its_records_names_the_list(tmp_path):
    records = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 40
    (tmp_path / "w.json").write_text(json.dumps({"version": 2, "data": records}), encoding="utf-8")
    message = "w.json: one JSON object without 'messages' whose 'data' holds 40 objects"
    with pytest.raises(TroupeError, match=re.escape(message)):
        messages.read(messages.Options(converter="messages", files=["w.json"]), context(tmp_path))


def test_deep_nesting_and_huge_integers_are_rejects_not_crashes(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    deep = "[" * 100_000 + "]" * 100_000
    huge = good[:-1] + ', "id": ' + "7" * 5000 + "}"
    nested = json.dumps({"messages": [{"role": "user", "content": "q"}], "x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]})
    (tmp_path / "c.jsonl").write_text("\n".join([good, deep, huge, nested.replace("1", "[" * 60 + "1" + "]" * 60)]))
    result = messages.read(messages.Options(converter="messages", files=["c.jsonl"]), context(tmp_path))
    assert [s.meta["index"] for s in result.samples] == [1]
    assert reasons(result) == [
        (2, "line is not readable JSON: nested too deeply"),
        (3, "id: an integer of 5000 digits (more than Python reads)"),
        (4, "nested more than 64 levels deep"),
    ]
    (tmp_path / "a.json").write_text(f"[{good}, {huge}, {good}]")
    array = messages.read(messages.Options(converter="messages", files=["a.json"]), context(tmp_path))
    assert [s.meta["index"] for s in array.samples] == [0, 2] and [r.index for r in array.rejects] == [1]


LATIN1_RECORDS = {  # one record with a Latin-1 byte (0xE9) between two good ones, in each format
    "messages": (
        "m.jsonl",
        '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "ok"}]}',
    ),
    "sharegpt": ("s.jsonl", '{"conversations": [{"from": "human", "value": "%s"}, {"from": "gpt", "value": "ok"}]}'),
    "qa_pairs": ("q.jsonl", '{"question": "%s", "answer": "ok"}'),
    "poetry": ("p.jsonl", '{"title": "t", "author": "a", "paragraphs": ["%s"]}'),
}


@pytest.mark.parametrize("converter", sorted(LATIN1_RECORDS))
def test_a_latin1_line_is_one_reject_in_every_converter_of_records(tmp_path, converter):
    name, template = LATIN1_RECORDS[converter]
    lines = [
        template % "caf\N{LATIN SMALL LETTER E WITH ACUTE}" if n == 2 else template % f"line {n}" for n in (1, 2, 3)
    ]
    (tmp_path / name).write_bytes("\n".join(lines).encode("latin-1"))
    module = {"messages": messages, "sharegpt": sharegpt, "qa_pairs": qa_pairs, "poetry": poetry}[converter]
    result = module.read(module.Options(converter=converter, files=[name]), context(tmp_path))
    assert [s.meta["index"] for s in result.samples] == [1, 3]
    assert [(r.index, "byte 0xE9 at character 4 is not UTF-8" in r.reason) for r in result.rejects] == [(2, True)]


def test_a_latin1_story_record_is_one_reject(tmp_path):
    story = [{"id": 1, "prop": "name", "attributes": {"name": "A", "content": "caf\u00e9"}}]
    story.append({"id": 2, "prop": "name", "attributes": {"name": "B", "content": "fine"}})
    (tmp_path / "s.json").write_bytes(json.dumps(story, ensure_ascii=False).encode("latin-1"))
    result = arknights.read(arknights.Options(converter="arknights", files=["s.json"]), context(tmp_path))
    assert [line.text for line in result.lines] == ["fine"]
    assert reasons(result) == [
        (1, "attributes.content: byte 0xE9 at character 4 is not UTF-8 (save the file as UTF-8)")
    ]


def test_a_story_file_that_does_not_parse_stops_the_build_naming_it(tmp_path):
    shutil.copy(FIXTURES / "arknights" / "broken_truncated.json", tmp_path / "story.json")
    options = arknights.Options(converter="arknights", files=["story.json"])
    with pytest.raises(TroupeError, match=re.escape("story.json: not valid JSON: Expecting")):
        arknights.read(options, context(tmp_path))


def test_nul_in_a_play_is_never_trained_on(tmp_path):
    (tmp_path / "p.txt").write_text("KEEPER: Light\x00 the lamp.\nMARA: It is lit.\n", encoding="utf-8")
    result = script.read(script.Options(converter="script", files=["p.txt"]), context(tmp_path))
    assert [line.text for line in result.lines] == ["It is lit."] and [r.index for r in result.rejects] == [1]


# ---- what the build says when records are rejected -------------------------------------------------


def rejects_of(*reasons_and_places) -> list[Reject]:
    return [Reject(source, index, reason) for reason, source, index in reasons_and_places]


def test_the_reject_summary_counts_reasons_and_shows_one_place_each():
    rejects = rejects_of(
        *[("turn 1 (user) has no text", "c.jsonl", n) for n in (3, 9)],
        ("turn 2 (user) has no text", "c.jsonl", 12),
        ("line is not valid JSON: Expecting value: line 1 column 5 (char 4)", "c.jsonl", 7),
        ("no assistant turn", "d.jsonl", 1),
        ("no turns", "d.jsonl", 2),
    )
    assert reject_summary(rejects).splitlines() == [
        "       3 × turn 1 (user) has no text (e.g. c.jsonl#3)",
        "       1 × line is not valid JSON: Expecting value: line 1 column 5 (char 4) (e.g. c.jsonl#7)",
        "       1 × no assistant turn (e.g. d.jsonl#1)",
        "       1 × other reasons",
    ]


def test_a_source_whose_every_record_is_rejected_says_why_not_who_speaks():
    spec = TroupeSpec.parse({"character": {"name": "陪伴者"}, "source": {"converter": "messages"}})
    rejects = rejects_of(*[("'question' is missing or empty", "qa.csv", n) for n in (2, 3)])
    result = ReadResult(lines=[], rejects=rejects, sources=[{"path": "qa.csv", "sha256": "0"}])
    with pytest.raises(TroupeError) as raised:
        dataset.samples_of(result, spec)
    assert str(raised.value) == (
        "no samples: all 2 records of 1 file(s) were rejected:\n"
        "       2 × 'question' is missing or empty (e.g. qa.csv#2)"
    )


def test_over_the_threshold_the_build_names_the_top_reasons(project):
    name = fixture(project, "chats_content_parts.jsonl")
    recipe = load_recipe("elderly_companion", [f"troupe.source.files=[{name}]"], root=project)
    with pytest.raises(TroupeError) as raised:
        dataset.build(recipe, "troupe convert elderly_companion")
    lines = str(raised.value).splitlines()
    assert (
        lines[0]
        == "4 of 8 records rejected (50.0%), above the recipe's reject_threshold of 5%; the most frequent reasons:"
    )
    assert lines[1] == (
        "       1 × turn 0 (user): content part 1 is 'image_url', not text (troupe trains on text only) "
        f"(e.g. {name}#5)"
    )
    assert lines[4] == "       1 × other reasons"
    assert lines[-1].startswith("every reject is in ") and lines[-1].endswith(
        "rejects.jsonl (fix the input, or raise troupe.dataset.reject_threshold)"
    )


def test_the_manifest_counts_kept_greetings_and_rejects_jsonl_holds_every_reject(project):
    name = fixture(project, "chats_content_parts.jsonl")
    overrides = [f"troupe.source.files=[{name}]", "troupe.dataset.reject_threshold=0.5"]
    manifest = dataset.build(load_recipe("elderly_companion", overrides, root=project), "troupe convert")
    assert manifest["counts"]["adjusted"] == {"greeting_kept": 1}
    assert (manifest["counts"]["records"], manifest["counts"]["rejected"], manifest["counts"]["samples"]) == (8, 4, 4)
    written = (project / "datasets" / "elderly_companion" / "rejects.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["index"] for line in written.splitlines()] == [5, 6, 7, 8]
