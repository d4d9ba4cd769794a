"""troupe.evaluation.metrics and style: every metric on hand-made examples with known answers."""

import pytest

from troupe.evaluation import metrics, style


def test_character_rouge_l_by_hand():
    # reference 今天天气很好 / reply 今天天气不错: LCS 今天天气 = 4; P = 4/6, R = 4/6 → F1 = 2/3
    assert metrics.rouge_l("今天天气不错", "今天天气很好") == pytest.approx(2 / 3)
    # reply 天气好 against 今天天气很好: LCS 天气好 = 3; P = 1, R = 1/2 → F1 = 2/3
    assert metrics.rouge_l("天气好", "今天天气很好") == pytest.approx(2 / 3)
    assert metrics.rouge_l("", "今天") == 0.0 and metrics.lcs_length("abcbdab", "bdcaba") == 4


def test_overlap_uses_character_tokens_for_chinese():
    scores = metrics.overlap(["今天天气很好"], ["今天天气很好"])
    assert scores["bleu4"] == pytest.approx(100) and scores["chrf"] == pytest.approx(100)
    assert scores["rouge_l"] == pytest.approx(100) and scores["bleu_tokenize"] == "zh"
    assert metrics.overlap(["the cat sat"], ["the cat sat"])["bleu_tokenize"] == "13a"
    assert metrics.overlap(["完全不同"], ["今天天气很好"])["bleu4"] == pytest.approx(0)


def test_distinct_n():
    assert metrics.distinct(["abab"], 1) == pytest.approx(2 / 4)
    assert metrics.distinct(["abab"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert metrics.distinct([], 2) == 0.0


def test_symptoms_of_the_seed():
    replies = [
        "......",
        "",
        "好。",
        "这一句是模型自己的话。",
        "说下去。",
        "作为一个AI，我不能这样做。",
        "凯尔希：我知道了。",
        "<|im_start|>你好",
        "这一句在训练集里。",
    ]
    references = ["参考回复一二三"] * len(replies)
    contexts = ["[博士]:说下去。"] * len(replies)
    result = metrics.symptoms(
        replies, references, contexts, train_targets={"这一句在训练集里。"}, speaker_names={"凯尔希", "博士"}
    )
    n = len(replies)
    assert result["replies"] == n
    assert result["empty_rate"] == pytest.approx(1 / n)
    assert result["punctuation_only_rate"] == pytest.approx(1 / n)  # "......"
    assert result["short_rate"] == pytest.approx(3 / n)  # "", 好。, 说下去。 ("......" has 6 characters)
    assert result["copies_context_rate"] == pytest.approx(1 / n)  # 说下去。 is the context line
    assert result["memorised_rate"] == pytest.approx(1 / n)
    assert result["role_prefix_rate"] == pytest.approx(1 / n)  # 凯尔希：…
    assert result["template_leak_rate"] == pytest.approx(1 / n)
    assert result["ai_identity_rate"] == pytest.approx(1 / n)
    assert result["mean_chars"] == pytest.approx(sum(map(len, replies)) / n)
    assert result["length_ratio"] == pytest.approx(result["mean_chars"] / 7)


def test_top_repeated_replies_with_counts():
    result = metrics.symptoms(["……", "……", "好", "……", "好", "嗯"], ["x"] * 6, [""] * 6, set(), set())
    assert result["top_repeated"] == [["……", 3], ["好", 2]]


@pytest.mark.parametrize(
    "text, found",
    [
        ("作为AI，我无法回答。", "作为AI"),
        ("我是一个语言模型。", "我是一个语言模型"),
        ("As an AI, I cannot.", "As an AI"),
        ("I'm a large language model.", "large language model"),
        ("I'm a brilliant AI designed to assist you.", "I'm a brilliant AI"),  # SmolLM2's own answer
        ("I am a captain, cadet, not a chatbot.", None),
        ("雾散了。", None),
        ("Obviously, Watson.", None),
    ],
)
def test_ai_identity_leaks(text, found):
    assert metrics.ai_identity(text) == found


def test_role_prefix_only_for_known_speakers():
    assert metrics.role_prefix("凯尔希：我在。", {"凯尔希"}) == "凯尔希"
    assert metrics.role_prefix("Doctor: fine", {"Doctor"}) == "Doctor"
    assert metrics.role_prefix("注意：有雾。", {"凯尔希"}) is None


def test_cjk_detection():
    assert metrics.is_cjk_text(["雾港的夜 hello"]) and not metrics.is_cjk_text(["hello world, 你"])


def test_style_classifier_separates_clearly_different_speakers():
    character = [f"吾观此雾，{x}也，宜静候之。" for x in "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"]
    other = [f"Hey! {x} is totally awesome, dude!" for x in "ABCDEFGHIJKLMNOPQRST"]
    model = style.train_style(character, other)
    assert model.held_out_accuracy == 1.0
    high, low = model.scores(["吾观此事，宜静候之。", "Dude, totally awesome!"])
    assert high > 0.8 and low < 0.2
    assert style.train_style(character[:3], other) is None  # too few lines to say anything


def test_bootstrap_intervals_never_come_from_identical_values():
    assert style.bootstrap_mean([0.5] * 10) == {"mean": 0.5, "low": None, "high": None, "n": 10}
    spread = style.bootstrap_mean([0.0, 1.0] * 50)
    assert spread["low"] < 0.5 < spread["high"] and spread["mean"] == 0.5 and spread["n"] == 100
    diff = style.bootstrap_difference([0.9] * 20, [0.4] * 20)  # every difference 0.5: nothing to resample
    assert diff["mean"] == pytest.approx(0.5) and diff["low"] is None and diff["high"] is None


def test_mostly_degenerate_replies_are_not_scored():
    assert metrics.scorable(["", "……", "——"]) == ([], "3 of 3 replies are empty or punctuation only")
    assert metrics.scorable(["好。", "", "说下去。", "……"]) == ([0, 2], None)  # half: scored on the two
    assert metrics.scorable(["好。", "", "……"]) == ([0], "2 of 3 replies are empty or punctuation only")
    assert metrics.scorable([]) == ([], "0 of 0 replies are empty or punctuation only")


def test_a_metric_separates_the_controls_by_more_than_a_tenth():
    assert metrics.separates(0.8, 0.2) and metrics.separates(100.0, 3.0) and metrics.separates(38.8, 19.1)
    assert not metrics.separates(0.0, 0.0) and not metrics.separates(0.95, 0.9)
    assert not metrics.separates(0.0, 1 / 61) and not metrics.separates(40.0, 37.0)  # one reply; under 10%


def test_other_voices_are_other_speakers_lines_of_the_prompts_without_narration():
    records = [
        {"messages": [{"role": "user", "content": "上下文:\n[小禾]:在吗\n[闻钟]:在。\n[旁白]:雾起。"}]},
        {"messages": [{"role": "user", "content": "上下文:\n[铁砧]:开船！\n[小禾]:在吗"}]},
    ]
    drawn = style.other_voices(records, {"闻钟"}, frozenset({"旁白"}), 5)
    assert len(drawn) == 5 and set(drawn) == {"在吗", "开船！"}  # distinct lines, reused in a fixed order
    assert drawn == style.other_voices(records, {"闻钟"}, frozenset({"旁白"}), 5)
    assert style.other_voices(records[:1], {"闻钟", "小禾"}, frozenset({"旁白"}), 3) == []


def test_voices_come_from_replies_and_other_speakers_context_lines():
    records = [
        {
            "messages": [
                {"role": "user", "content": "上下文:\n[小禾]:在吗\n[闻钟]:在。\n[旁白]:雾起。"},
                {"role": "assistant", "content": "说吧。"},
            ]
        },
        {"messages": [{"role": "user", "content": "What is rain?"}, {"role": "assistant", "content": "Tears."}]},
    ]
    character, other = style.voices(records, {"闻钟"})
    assert character == ["在。", "说吧。", "Tears."] and other == ["在吗", "雾起。", "What is rain?"]


def test_names_are_found_as_whole_words():
    assert metrics.names_any("Isolde Marrowby, captain of the Larkspur.", ["Marrowby"])
    assert not metrics.names_any("the Marrowbyan coast", ["Marrowby"])
    assert metrics.names_any("我是闻钟。", ["闻钟"])
