"""Offline metrics of replies against references: pure functions, tested on hand-made examples.

Overlap (character level, right for Chinese): BLEU-4 and chrF from sacrebleu, ROUGE-L by longest
common subsequence. Symptoms, as the seeds counted them by hand: empty, punctuation-only and
very short replies, length against the references, the most repeated replies, distinct-1/2, replies
that copy a context line or a training target, role-prefix, chat-template and AI-identity leaks.

No score for degenerate output: overlap and style are computed on the replies that are neither
empty nor punctuation only (`scorable`), and not at all ("n/a") when those are most of them.
"""

import re
from collections import Counter

from troupe.dataset import is_punctuation_only

SHORT_REPLY_CHARS = 4
MAX_DEGENERATE = 0.5  # more empty/punctuation-only replies than this share: the system is not scored
SEPARATION = 0.1  # controls closer than this (share of the larger value, at least 1) do not separate
AI_IDENTITY = re.compile(
    r"作为(一个|一名)?(AI|人工智能|语言模型|AI助手)|我是(一个)?(AI|人工智能|语言模型)|语言模型|人工智能助手|"
    r"\bas an? (AI|artificial intelligence|language model)\b|\b(large )?language model\b|"
    r"\bI am an AI\b|\bAI assistant\b|\bI(?:'m| am) an? (?:\w+ ){0,2}(?:AI|chatbot|virtual assistant)\b",
    re.IGNORECASE,
)
REPLACEMENT_CHAR = "\ufffd"  # what a decoder writes for bytes that are not UTF-8
TEMPLATE_MARKERS = (
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|turn>",
    "<turn|>",
    "<|start_header_id|>",
    "<|eot_id|>",
    "<|channel>",
    "[INST]",
    "</s>",
    "<bos>",
    "<eos>",
)
CONTEXT_LINE = re.compile(r"^\[(?P<speaker>[^\]]+)\]:(?P<text>.*)$")


def is_cjk_text(texts: list[str]) -> bool:
    """True when CJK characters make up at least 30% of the letters."""
    letters = [ch for text in texts for ch in text if ch.isalpha()]
    cjk = sum("\u3400" <= ch <= "\u9fff" or "\u3040" <= ch <= "\u30ff" for ch in letters)
    return bool(letters) and cjk / len(letters) >= 0.3


def scorable(replies: list[str]) -> tuple[list[int], str | None]:
    """Indices of the replies worth scoring (not empty, not punctuation only), and why the system
    gets no score at all when they are too few (None when it is scored)."""
    kept = [i for i, reply in enumerate(replies) if reply and not is_punctuation_only(reply)]
    degenerate = len(replies) - len(kept)
    if not replies or degenerate > MAX_DEGENERATE * len(replies):
        return kept, f"{degenerate} of {len(replies)} replies are empty or punctuation only"
    return kept, None


def separates(positive: float, negative: float) -> bool:
    """Whether a metric tells the positive control from the negative one on this data: by more than 10%
    of the larger value, and by more than 0.1 for shares and scores up to 1 (one reply in 61 is not)."""
    return abs(positive - negative) > SEPARATION * max(abs(positive), abs(negative), 1.0)


def overlap(replies: list[str], references: list[str]) -> dict:
    """Corpus BLEU-4 and chrF (sacrebleu; CJK split into characters) and mean character ROUGE-L F1."""
    from sacrebleu.metrics import BLEU, CHRF

    tokenize = "zh" if is_cjk_text(references) else "13a"
    bleu = BLEU(tokenize=tokenize, effective_order=True).corpus_score(replies, [references])
    chrf = CHRF().corpus_score(replies, [references])
    rouge = [rouge_l(r, ref) for r, ref in zip(replies, references, strict=True)]
    return {
        "bleu4": bleu.score,
        "bleu_tokenize": tokenize,
        "chrf": chrf.score,
        "rouge_l": 100 * sum(rouge) / len(rouge) if rouge else 0.0,
    }


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence of characters."""
    previous = [0] * (len(b) + 1)
    for ch in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if ch == other else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(reply: str, reference: str) -> float:
    """Character-level ROUGE-L F1 (β = 1)."""
    common = lcs_length(reply, reference)
    if not common:
        return 0.0
    precision, recall = common / len(reply), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def distinct(replies: list[str], n: int) -> float:
    """Distinct character n-grams over all n-grams of all replies (diversity; 1.0 = no repeats)."""
    grams = [reply[i : i + n] for reply in replies for i in range(len(reply) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def context_lines(user_message: str) -> list[tuple[str, str]]:
    """(speaker, text) of every `[speaker]:text` line in a rendered user turn."""
    return [(m["speaker"], m["text"].strip()) for line in user_message.splitlines() if (m := CONTEXT_LINE.match(line))]


def role_prefix(reply: str, names: set[str]) -> str | None:
    """The speaker name a reply opens with ('凯尔希：…', 'Doctor: …'), if it is one of `names`."""
    head = re.split(r"[:：]", reply, maxsplit=1)
    name = head[0].strip().strip("[]【】")
    return name if len(head) == 2 and name in names else None


def symptoms(
    replies: list[str], references: list[str], contexts: list[str], train_targets: set[str], speaker_names: set[str]
) -> dict:
    """The seed's hand-counted symptoms, counted, plus leaks; rates are shares of all replies."""
    n = max(len(replies), 1)
    mean, ref_mean = sum(map(len, replies)) / n, sum(map(len, references)) / max(len(references), 1)
    copied = [r for r, c in zip(replies, contexts, strict=True) if r and r in {text for _, text in context_lines(c)}]
    return {
        "replies": len(replies),
        "empty_rate": sum(not r for r in replies) / n,
        "punctuation_only_rate": sum(is_punctuation_only(r) for r in replies) / n,
        "short_rate": sum(len(r) <= SHORT_REPLY_CHARS for r in replies) / n,
        "mean_chars": mean,
        "reference_mean_chars": ref_mean,
        "length_ratio": mean / ref_mean if ref_mean else None,
        "top_repeated": [[reply, count] for reply, count in Counter(replies).most_common(10) if count > 1],
        "distinct_1": distinct(replies, 1),
        "distinct_2": distinct(replies, 2),
        "copies_context_rate": len(copied) / n,
        "memorised_rate": sum(bool(r) and r in train_targets for r in replies) / n,
        "role_prefix_rate": sum(role_prefix(r, speaker_names) is not None for r in replies) / n,
        "template_leak_rate": sum(template_leak(r) is not None for r in replies) / n,
        "ai_identity_rate": sum(ai_identity(r) is not None for r in replies) / n,
    }


def template_leak(reply: str) -> str | None:
    """A chat-template marker left in a reply (decoded with special tokens kept), if any."""
    return next((marker for marker in TEMPLATE_MARKERS if marker in reply), None)


def names_any(reply: str, words: list[str]) -> bool:
    """Whether a reply says one of `words`, any case, e.g. the character's names: not inside a longer
    Latin word ('Marrowbyan'); Chinese has no spaces to bound a word, so 我是闻钟 names 闻钟."""
    bounded = (rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])" for word in words)
    return any(re.search(pattern, reply, re.IGNORECASE) for pattern in bounded)


def ai_identity(reply: str) -> str | None:
    """The phrase by which a reply steps out of character as an AI ('作为AI', 'as an AI', …), if any."""
    match = AI_IDENTITY.search(reply)
    return match.group(0) if match else None
