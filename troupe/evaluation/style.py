"""An offline style score: does a reply read like the character's lines in the dataset?

A character-n-gram classifier (scikit-learn: tf-idf over 1–3 characters, logistic regression) is
trained on the train split only — the character's replies against the other voices in the same
data (other speakers' context lines, or the user turns where there are none). Its held-out accuracy
says how far to trust it. Each system's score is the mean probability that its replies are the
character's, with a bootstrap 95% interval; the adapter − base difference is bootstrapped over the
same prompts (paired). Identical values have no interval: resampling them proves nothing.

Two controls show whether the classifier can tell the character at all on this data: the
references (positive) and other voices' lines from the same test prompts (negative, see
`other_voices`), which are kept out of the classifier's training lines.
"""

import random
from dataclasses import dataclass

from troupe.evaluation.metrics import context_lines

MIN_LINES = 5


@dataclass
class StyleModel:
    classifier: object
    held_out_accuracy: float
    lines: dict  # {"character": n, "other": n}

    def scores(self, replies: list[str]) -> list[float]:
        """P(character) for each reply."""
        column = list(self.classifier.classes_).index(1)
        return [float(p[column]) for p in self.classifier.predict_proba(replies)]


def voices(records: list[dict], names: set[str], skip: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """(the character's lines, other voices' lines) from dataset records (messages layout); context
    lines of the `skip` speakers (e.g. narration) are left out."""
    character, other = [], []
    for record in records:
        for message in record["messages"]:
            if message["role"] == "assistant":
                character.append(message["content"])
            elif message["role"] == "user":
                lines = context_lines(message["content"])
                if lines:
                    character += [text for speaker, text in lines if speaker in names]
                    other += [text for speaker, text in lines if speaker not in names | skip]
                else:
                    other.append(message["content"])
    return [x for x in character if x], [x for x in other if x]


def _classifier():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )


def train_style(character: list[str], other: list[str], seed: int = 0) -> StyleModel | None:
    """Fit on 80% and report accuracy on the other 20%, then refit on everything; None when there are
    too few lines of either kind to say anything."""
    from sklearn.model_selection import train_test_split

    if len(character) < MIN_LINES or len(other) < MIN_LINES:
        return None
    texts, labels = character + other, [1] * len(character) + [0] * len(other)
    fit_x, test_x, fit_y, test_y = train_test_split(texts, labels, test_size=0.2, random_state=seed, stratify=labels)
    held_out = _classifier().fit(fit_x, fit_y).score(test_x, test_y)
    return StyleModel(
        _classifier().fit(texts, labels), float(held_out), {"character": len(character), "other": len(other)}
    )


def other_voices(records: list[dict], names: set[str], narrators: frozenset[str], count: int) -> list[str]:
    """The negative control: `count` lines spoken by others in the test prompts themselves (other
    speakers' context lines, narration left out; or the user turns), distinct, drawn with a fixed
    seed; [] when there are none."""
    pool = sorted(set(voices(records, names, narrators)[1]))
    random.Random(0).shuffle(pool)
    return [pool[i % len(pool)] for i in range(count)] if pool else []


def bootstrap_mean(values: list[float], samples: int = 2000, seed: int = 0) -> dict:
    """Mean with a percentile bootstrap 95% interval (low/high None when every value is the same)."""
    mean = sum(values) / len(values)
    if len(set(values)) < 2:
        return {"mean": mean, "low": None, "high": None, "n": len(values)}
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(samples))
    return {"mean": mean, "low": means[int(0.025 * samples)], "high": means[int(0.975 * samples) - 1], "n": len(values)}


def bootstrap_difference(after: list[float], before: list[float], samples: int = 2000, seed: int = 0) -> dict:
    """Mean of after − before over the same items, resampling items (paired), with a 95% interval."""
    return bootstrap_mean([a - b for a, b in zip(after, before, strict=True)], samples, seed)
