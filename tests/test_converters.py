"""Converters of ready samples and of plays: one example in, exact records out; malformed input is a
counted reject with its reason, never a crash or a silent drop."""

import json
import re
from pathlib import Path

import pytest

from troupe.converters import ReadContext, poetry, qa_pairs, script, sharegpt
from troupe.converters import messages as messages_converter
from troupe.converters._chat import ChatOptions, clean_turns
from troupe.converters._files import json_records
from troupe.records import Reject

FIXTURES = Path(__file__).parent / "fixtures"
SYSTEM = "你是陪伴者。"


def context(root: Path, system: str = SYSTEM) -> ReadContext:
    return ReadContext(root=root, cache_dir=root / "cache", system_prompt=system)


def write(root: Path, name: str, text: str) -> str:
    (root / name).write_text(text, encoding="utf-8")
    return name


# ---- chat turns (messages and ShareGPT share this) ------------------------------------------------


def chat(**options) -> ChatOptions:
    return ChatOptions(converter="messages", files=["x"], **options)


def test_turns_are_cleaned_and_the_recipe_system_prompt_replaces_the_records():
    turns = [
        {"role": "system", "content": "old"},
        {"role": "user", "content": " 你好 "},
        {"role": "assistant", "content": "在呢。"},
    ]
    assert clean_turns(turns, "role", "content", chat(), SYSTEM) == (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "在呢。"},
        ],
        [],
    )
    assert clean_turns(turns, "role", "content", chat(system="keep"), SYSTEM)[0][0]["content"] == "old"
    assert clean_turns(turns[1:], "role", "content", chat(system="inject"), SYSTEM)[0][0]["content"] == SYSTEM
    assert clean_turns(turns[1:], "role", "content", chat(system="keep"), SYSTEM)[0][0]["role"] == "user"


def test_consecutive_turns_of_one_side_merge_or_reject():
    turns = [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}, {"from": "gpt", "value": "c"}]
    assert clean_turns(turns, "from", "value", chat(), "") == (
        [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c"}],
        [],
    )
    with pytest.raises(ValueError, match="two user turns in a row"):
        clean_turns(turns, "from", "value", chat(alternation="reject"), "")


@pytest.mark.parametrize(
    "turns, reason",
    [
        ([], "no turns"),
        ("text", "no turns"),
        ([{"role": "user", "content": "hi"}], "no assistant turn"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "image"}]}], "'image', not"),
        ([{"role": "user", "content": "hi"}, {"role": "narrator", "content": "x"}], "unknown role 'narrator'"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}], "turn 1 (assistant) has no text"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": 3}], "has no text"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "b"},
            ],
            "a system turn after the first turn",
        ),
        (["not a turn"], "turn 0 is not an object"),
    ],
)
def test_unusable_conversations_say_why(turns, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        clean_turns(turns, "role", "content", chat(), "")


def test_a_bad_json_line_in_the_middle_is_one_reject(tmp_path):
    name = write(tmp_path, "c.jsonl", '{"a": 1}\n{"a": \n\n{"a": 3}\n')
    items = list(json_records(tmp_path / name, name))
    assert [item for item in items if not isinstance(item, Reject)] == [(1, {"a": 1}), (4, {"a": 3})]
    (reject,) = [item for item in items if isinstance(item, Reject)]
    assert reject.index == 2 and reject.reason.startswith("line is not valid JSON")


def test_messages_converter_on_the_fixture_with_errors(tmp_path):
    (tmp_path / "chats.jsonl").write_bytes((FIXTURES / "converters" / "chats_with_errors.jsonl").read_bytes())
    result = messages_converter.read(
        messages_converter.Options(converter="messages", files=["chats.jsonl"]), context(tmp_path)
    )
    assert len(result.samples) == 40 and result.records == 44
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejects] == [
        (6, "line is not valid JSON"),
        (17, "turn 2 (assistant) has no text"),
        (29, "turn 1 has unknown role 'narrator' (known"),
        (38, "no assistant turn"),
    ]
    assert all(s.messages[0] == {"role": "system", "content": SYSTEM} for s in result.samples)
    assert result.samples[0].meta == {"source": "chats.jsonl", "index": 1, "story": "chats.jsonl#1"}


def test_sharegpt_converter_reads_a_json_array(tmp_path):
    records = [
        {"id": "a", "conversations": [{"from": "human", "value": "Who?"}, {"from": "gpt", "value": "Me."}]},
        {"id": "b"},
        {"id": "c", "conversations": [{"from": "user", "value": "Q"}, {"from": "assistant", "value": "A"}]},
    ]
    name = write(tmp_path, "s.json", json.dumps(records))
    result = sharegpt.read(sharegpt.Options(converter="sharegpt", files=[name]), context(tmp_path, system=""))
    assert [s.messages for s in result.samples] == [
        [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Me."}],
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
    ]
    assert [(r.index, r.reason) for r in result.rejects] == [(1, "no turns")]


# ---- Q/A pairs --------------------------------------------------------------------------------


def test_qa_pairs_from_csv_with_a_stray_quote_missing_column_and_empty_answer(tmp_path):
    text = (
        "question,answer\n"
        'What is gold?,"Shiny, sure, and mine!"\n'
        "What is rain?,Sure it's \"the sky's own tears, and\n"
        'Why green?,"Because ""clover"" grows."\n'
        "No answer here\n"
        "Empty?,\n"
        'Multi,"two\nlines"\n'
    )
    name = write(tmp_path, "qa.csv", text)
    result = qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=[name]), context(tmp_path, system=""))
    assert [[m["content"] for m in s.messages] for s in result.samples] == [
        ["What is gold?", "Shiny, sure, and mine!"],
        ["Why green?", 'Because "clover" grows.'],
        ["Multi", "two\nlines"],
    ]
    assert [(r.index, r.reason) for r in result.rejects] == [
        (3, "3 columns where the header has 2"),
        (5, "1 columns where the header has 2"),
        (6, "'answer' is missing or empty"),
    ]


def test_an_unterminated_quote_does_not_swallow_the_rest_of_the_file(tmp_path):
    name = write(tmp_path, "qa.tsv", 'q\ta\nfirst\t"open quote\nsecond\tfine\nthird\talso fine\n')
    result = qa_pairs.read(
        qa_pairs.Options(converter="qa_pairs", files=[name], question_field="q", answer_field="a"),
        context(tmp_path, system=""),
    )
    assert [s.messages[0]["content"] for s in result.samples] == ["second", "third"]
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejects] == [(2, "not valid TSV")]


def test_qa_pairs_from_jsonl_with_custom_fields(tmp_path):
    name = write(tmp_path, "qa.jsonl", '{"q": "Why?", "a": "Because, it is."}\n{"q": "How?"}\n')
    result = qa_pairs.read(
        qa_pairs.Options(converter="qa_pairs", files=[name], question_field="q", answer_field="a"), context(tmp_path)
    )
    assert result.samples[0].messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Because, it is."},
    ]
    assert [(r.index, r.reason) for r in result.rejects] == [(2, "'a' is missing or empty")]


# ---- poetry -----------------------------------------------------------------------------------

POEM = {"author": "鏡湖生", "title": "秋夜", "paragraphs": ["風過竹聲寒，", "燈殘夢未闌。"]}


def test_a_poem_as_completion_text_in_simplified_characters():
    options = poetry.Options(converter="poetry", files=["x"], simplified=True)
    assert poetry.poem_sample(POEM, options, "") == {
        "text": "秋夜\n镜湖生\n风过竹声寒，\n灯残梦未阑。",
        "meta": {"prompt": "秋夜\n镜湖生\n"},
    }


def test_a_poem_as_an_instruction_with_the_recipes_author_and_a_tune_name():
    options = poetry.Options(converter="poetry", files=["x"], form="instruction", author="無名氏")
    record = {"rhythmic": "浣溪沙", "paragraphs": ["一", "二"]}
    assert poetry.poem_sample(record, options, "") == {
        "messages": [
            {"role": "user", "content": "写一首题为《浣溪沙》的诗，仿無名氏的风格。"},
            {"role": "assistant", "content": "一\n二"},
        ]
    }


def test_poems_with_errors_are_counted(tmp_path):
    (tmp_path / "p.json").write_bytes((FIXTURES / "converters" / "poems_with_errors.json").read_bytes())
    result = poetry.read(poetry.Options(converter="poetry", files=["p.json"]), context(tmp_path))
    assert len(result.samples) == 35
    assert [(r.index, r.reason.split(" (")[0]) for r in result.rejects] == [
        (11, "no 'author'"),
        (16, "'paragraphs' is missing, empty or not a list of lines"),
        (22, "'paragraphs' is missing, empty or not a list of lines"),
    ]


# ---- plays ------------------------------------------------------------------------------------


def test_block_layout_play_with_colon_ending_verse_lines_and_a_group_speaker():
    from collections import Counter

    text = (FIXTURES / "script" / "lighthouse_play.txt").read_text(encoding="utf-8")
    lines = script.parse_script(text, "play", "play.txt")
    assert Counter(line.speaker for line in lines) == {
        "KEEPER": 15,
        "MARA": 8,
        "First Fisherman": 6,
        "Second Fisherman": 4,
        "All": 2,
    }
    by_start = {line.index: line for line in lines}
    assert by_start[31].text == (
        "I walked the gallery at dusk and heard the gulls, And this is what the sea said "
        "to me: Keep the light, old man, or I will keep your friends."
    )
    assert by_start[72].speaker == "MARA" and "And here is all the harbour knew by then: The Heron" in by_start[72].text
    assert by_start[43].text.startswith("Laugh if you like.") and by_start[43].text.endswith("smells of smoke.")


def test_inline_layout_with_chinese_colons_and_stage_directions():
    text = "[夜，灯室。]\n守灯人：灯亮了。\nMARA: The log says: fog by midnight.\n\nnot a speaker line\n"
    lines = script.parse_script(text, "d", "d.txt")
    assert [(line.index, line.speaker, line.text, line.kind) for line in lines] == [
        (1, None, "[夜，灯室。]", "narration"),
        (2, "守灯人", "灯亮了。", "speech"),
        (3, "MARA", "The log says: fog by midnight.", "speech"),
        (5, None, "not a speaker line", "narration"),
    ]


def test_block_speech_lines_in_chinese_join_without_spaces():
    lines = script.parse_script("守灯人:\n灯亮了，\n风停了。\n\n学徒:\n好。\n", "p", "p.txt")
    assert [(line.speaker, line.text) for line in lines] == [("守灯人", "灯亮了，风停了。"), ("学徒", "好。")]


def test_lines_of_a_play_that_are_not_utf8_or_hold_nul_are_rejects_and_the_rest_is_read(tmp_path):
    text = "KEEPER:\nThe lamp is lit.\nThe café is shut.\n\nMARA:\nThen we\x00 wait.\nFor the boat.\n"
    (tmp_path / "play.txt").write_bytes(text.encode("latin-1"))
    result = script.read(script.Options(converter="script", files=["play.txt"]), context(tmp_path))
    assert [(line.index, line.speaker, line.text) for line in result.lines] == [
        (2, "KEEPER", "The lamp is lit."),
        (6, "MARA", "For the boat."),
    ]
    assert [(r.index, r.reason) for r in result.rejects] == [
        (3, "byte 0xE9 at character 8 is not UTF-8 (save the file as UTF-8)"),
        (6, "control character U+0000 at character 8"),
    ]


def test_english_fixtures_with_errors(tmp_path):
    for name in ("conversations_with_errors.json", "qa_with_errors.csv", "qa_with_errors.jsonl"):
        (tmp_path / name).write_bytes((FIXTURES / "converters" / name).read_bytes())
    shared = sharegpt.read(
        sharegpt.Options(converter="sharegpt", files=["conversations_with_errors.json"]), context(tmp_path, system="")
    )
    assert len(shared.samples) == 36
    assert [(r.index, r.reason) for r in shared.rejects] == [
        (17, "no turns"),
        (19, "turn 2 (gpt) has no text"),
        (21, "turn 3 has unknown role 'narrator' (known: system, user, human, assistant, gpt)"),
    ]
    merged = [s for s in shared.samples if s.meta["index"] == 7][0].messages
    assert [m["role"] for m in merged] == ["system", "user", "assistant", "user", "assistant"]
    csv_result = qa_pairs.read(qa_pairs.Options(converter="qa_pairs", files=["qa_with_errors.csv"]), context(tmp_path))
    assert len(csv_result.samples) == 40 and [r.index for r in csv_result.rejects] == [10, 22, 36]
    jsonl = qa_pairs.read(
        qa_pairs.Options(converter="qa_pairs", files=["qa_with_errors.jsonl"], question_field="q", answer_field="a"),
        context(tmp_path),
    )
    assert len(jsonl.samples) == 40 and [r.index for r in jsonl.rejects] == [20, 23]
