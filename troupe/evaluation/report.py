"""The evaluation report: one self-contained HTML page (jinja2, images inline), the terminal
summary table, and `troupe compare` across runs."""

import base64
import io
import json
from pathlib import Path

from jinja2 import Environment

SUMMARY_ROWS = [
    ("test loss", "test_loss", "{:.3f}"),
    ("perplexity", "test_perplexity", "{:.1f}"),
    ("BLEU-4", "bleu4", "{:.1f}"),
    ("chrF", "chrf", "{:.1f}"),
    ("ROUGE-L", "rouge_l", "{:.1f}"),
    ("mean chars", "mean_chars", "{:.1f}"),
    ("length ratio", "length_ratio", "{:.2f}"),
    ("empty", "empty_rate", "{:.0%}"),
    ("punctuation only", "punctuation_only_rate", "{:.0%}"),
    ("≤4 chars", "short_rate", "{:.0%}"),
    ("distinct-2", "distinct_2", "{:.2f}"),
    ("copies context", "copies_context_rate", "{:.0%}"),
    ("memorised", "memorised_rate", "{:.0%}"),
    ("role prefix", "role_prefix_rate", "{:.0%}"),
    ("template leaks", "template_leak_rate", "{:.0%}"),
    ("replies with U+FFFD", "replacement_char_replies", "{:d}"),
    ("AI-identity leaks", "ai_identity_rate", "{:.0%}"),
]
SAMPLES_SHOWN = 20
CONTROL_TITLES = {"references": "references (+)", "other_voices": "other voices (−)"}


def cell(value, fmt: str) -> str:
    """A formatted number; "n/a" where a metric was withheld (None), "-" where it does not apply."""
    if value is None:
        return "n/a"
    return fmt.format(value) if isinstance(value, int | float) else "-"


def columns(scores: dict) -> list[str]:
    """Each system between the controls: references, base, adapter[, merged], other voices."""
    controls = scores.get("controls", {})
    positive = ["references"] if "references" in controls else []
    return [*positive, *scores["systems"], *(name for name in controls if name != "references")]


def title(name: str) -> str:
    return CONTROL_TITLES.get(name, name)


def style_cell(entry: dict | None) -> str:
    """P(character) with its interval; "n/a" when withheld; no interval when every value was the same."""
    if not entry or entry.get("mean") is None:
        return "n/a"
    if entry.get("low") is None:
        return f"{entry['mean']:.2f} (no interval)"
    return f"{entry['mean']:.2f} [{entry['low']:.2f}, {entry['high']:.2f}]"


def identity_cell(entry: dict | None) -> str:
    """Identity questions answered as the character, of those asked ("-" for the controls)."""
    return f"{entry['in_character']}/{entry['probes']}" if entry and entry.get("probes") else "-"


def _separation(flag) -> str:
    return "" if flag is None else "yes" if flag else "no"


def summary_rows(scores: dict, keys: set[str] | None = None) -> list[tuple[str, dict[str, str], str]]:
    """(label, {column: formatted value}, whether the controls separate) for the headline numbers,
    the scored-reply counts and the style score; `keys` keeps only some of them (troupe compare)."""
    names = columns(scores)
    entries = {n: scores["systems"].get(n) or scores["controls"][n] for n in names}
    separates = scores.get("informative", {})
    chosen = [row for row in SUMMARY_ROWS if keys is None or row[1] in keys]
    rows = [
        (label, {n: cell(entries[n].get(key, ""), fmt) for n in names}, _separation(separates.get(key)))
        for label, key, fmt in chosen
    ]
    scored = {n: f"{entries[n].get('scored_replies', '-')}/{entries[n].get('replies', '-')}" for n in names}
    rows.append(("scored replies", scored, ""))
    if keys is None or "identity" in keys:
        rows.append(("answers as character", {n: identity_cell(entries[n].get("identity")) for n in names}, ""))
    styled = scores["style"]
    if styled["available"]:
        values = {n: style_cell(styled["systems"].get(n)) for n in names}
        rows.append(("style P(character)", values, _separation(styled.get("informative"))))
    return rows


def difference_text(diff: dict) -> str:
    """adapter − base with its interval, or why there is none."""
    if diff.get("mean") is None:
        return f"n/a ({diff.get('why')})"
    interval = "no interval: every difference is the same" if diff["low"] is None else None
    interval = interval or f"[{diff['low']:+.3f}, {diff['high']:+.3f}]"
    return f"{diff['mean']:+.3f} {interval} over {diff['n']} prompts"


def summary_table(scores: dict) -> str:
    """The headline numbers, each system between the controls (printed at the end of `make evaluate`)."""
    names, width = columns(scores), 19
    lines = [f"{'':20}" + "".join(f"{title(n):>{width}}" for n in names) + f"{'informative':>13}"]
    for label, values, separates in summary_rows(scores):
        lines.append(f"{label:20}" + "".join(f"{values[n]:>{width}}" for n in names) + f"{separates:>13}")
    styled = scores["style"]
    if styled["available"]:
        lines.append(
            f"style adapter − base: {difference_text(styled['adapter_minus_base'])} "
            f"(classifier held-out accuracy {styled['held_out_accuracy']:.0%})"
        )
    lines.append(LEGEND)
    return "\n".join(lines)


LEGEND = (
    "informative: whether the metric separates the references (positive control) from other voices' lines "
    "on the same prompts (negative control): by over 10% (shares: 10 points; style: 95% intervals apart). "
    "n/a: mostly empty or punctuation-only replies, not scored."
)


def training_log(adapter_dir: Path) -> list[dict]:
    """Axolotl's log history (loss per step, eval loss), kept beside the promoted adapter."""
    state = adapter_dir / "trainer_state.json"
    return json.loads(state.read_text(encoding="utf-8"))["log_history"] if state.is_file() else []


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def loss_curves(log: list[dict]) -> str | None:
    """Train and eval loss against step, as an inline PNG (None without a training log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], float(e["loss"])) for e in log if "loss" in e]
    evals = [(e["step"], float(e["eval_loss"])) for e in log if "eval_loss" in e]
    if not train and not evals:
        return None
    figure, axes = plt.subplots(figsize=(6, 3))
    for points, label in ((train, "train loss"), (evals, "eval loss")):
        if points:
            axes.plot(*zip(*points, strict=True), marker=".", label=label)
    axes.set_xlabel("step")
    axes.legend()
    image = _png(figure)
    plt.close(figure)
    return image


def length_histogram(lengths: dict[str, list[int]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3))
    top = max((max(v) for v in lengths.values() if v), default=1)
    for name, values in lengths.items():
        axes.hist(values, bins=20, range=(0, top), histtype="step", label=name)
    axes.set_xlabel("reply length (characters)")
    axes.legend()
    image = _png(figure)
    plt.close(figure)
    return image


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>troupe evaluation: {{ slug }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}
.num{text-align:right}.small{color:#666;font-size:.9em}</style></head><body>
<h1>{{ character }} — evaluation of <code>{{ slug }}</code></h1>
<p class="small">{{ test_samples }} test prompts; generation: {{ settings }}</p>
<h2>Summary</h2>
<table id="summary"><tr><th></th>{% for n in columns %}<th>{{ title(n) }}</th>{% endfor %}<th>informative</th></tr>
{% for label, values, separates in rows %}<tr><td>{{ label }}</td>
{% for n in columns %}<td class="num">{{ values[n] }}</td>{% endfor %}<td>{{ separates }}</td></tr>{% endfor %}</table>
<p class="small">{{ legend }}</p>
{% if style.available %}<p>Style classifier: held-out accuracy {{ "%.0f%%" % (100 * style.held_out_accuracy) }} on
{{ style.lines.character }} lines of the character and {{ style.lines.other }} of other voices;
adapter − base {{ difference }}.</p>
{% else %}<p>Style score not available: {{ style.why }}.</p>{% endif %}
{% if parity %}<p>Merge parity: {{ "%.0f%%" % (100 * parity.identical_replies) }} identical greedy replies;
largest logit difference {{ "%.4g" % parity.max_logit_diff }}.</p>{% endif %}
{% if judge %}<h2>LLM judge</h2><pre>{{ judge }}</pre>{% endif %}
<h2>Training</h2>
{% if curves %}<img alt="loss curves" src="{{ curves }}">{% else %}<p>No training log found.</p>{% endif %}
<h2>Reply lengths</h2><img alt="length histogram" src="{{ histogram }}">
<h2>Most repeated replies</h2>
{% for n in systems %}<h3>{{ n }}</h3>{% if repeated[n] %}<table><tr><th>reply</th><th>count</th></tr>
{% for reply, count in repeated[n] %}<tr><td>{{ reply or "(empty)" }}</td><td class="num">{{ count }}</td></tr>
{% endfor %}
</table>{% else %}<p>none repeated</p>{% endif %}{% endfor %}
<h2>Sample generations</h2>
<table id="samples"><tr><th>context</th><th>reference</th>{% for n in systems %}<th>{{ n }}</th>{% endfor %}</tr>
{% for row in samples %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<h2>Probes: red team, and who the character is</h2>
<table id="probes"><tr><th>kind</th><th>probe</th>{% for n in systems %}<th>{{ n }}</th>{% endfor %}</tr>
{% for t in probes %}<tr><td>{{ t.kind }}</td><td>{{ t.probe }}</td>
{% for n in systems %}<td>{{ t[n] }}</td>{% endfor %}</tr>{% endfor %}
</table></body></html>
"""


def render_report(recipe, cases, runs: dict, scores: dict, transcripts: list[dict]) -> str:
    """The whole report as one HTML string (jinja2 autoescaping on: replies are untrusted text)."""
    lengths = {"references": [len(c.reference) for c in cases]} | {
        n: [len(r.text) for r in run.replies] for n, run in runs.items()
    }
    samples = [
        [c.context, c.reference, *[run.replies[i].text for run in runs.values()]]
        for i, c in enumerate(cases[:SAMPLES_SHOWN])
    ]
    return (
        Environment(autoescape=True)
        .from_string(TEMPLATE)
        .render(
            slug=recipe.slug,
            character=recipe.spec.character.name,
            test_samples=scores["test_samples"],
            settings=scores["settings"],
            systems=list(scores["systems"]),
            columns=columns(scores),
            title=title,
            rows=summary_rows(scores),
            legend=LEGEND,
            style=scores["style"],
            difference=difference_text(scores["style"]["adapter_minus_base"]) if scores["style"]["available"] else "",
            parity=scores.get("merge_parity"),
            judge=json.dumps(scores.get("judge"), ensure_ascii=False, indent=2) if scores.get("judge") else None,
            curves=loss_curves(training_log(recipe.layout.adapter_dir)),
            histogram=length_histogram(lengths),
            repeated={n: s["top_repeated"] for n, s in scores["systems"].items()},
            samples=samples,
            probes=transcripts,
        )
    )


HEADLINE_KEYS = {
    "test_loss",
    "test_perplexity",
    "bleu4",
    "chrf",
    "rouge_l",
    "mean_chars",
    "empty_rate",
    "punctuation_only_rate",
    "short_rate",
    "distinct_2",
}


def compare_table(runs: dict[str, dict]) -> str:
    """The summary's headline rows for several runs (`troupe compare`): one line per run and column
    (the controls, base, adapter…), then whether each metric separates the controls."""
    first = next(iter(runs.values()))
    labels = [label for label, _, _ in summary_rows(first, HEADLINE_KEYS)]
    widths = [max(10, len(label) + 2) for label in labels[:-1]] + [20]
    lines = [f"{'run':24}{'system':18}" + "".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True))]
    for name, scores in runs.items():
        rows = summary_rows(scores, HEADLINE_KEYS)
        lines += [_line(name, title(c), [values[c] for _, values, _ in rows], widths) for c in columns(scores)]
        lines.append(_line(name, "informative", [flag or "-" for _, _, flag in rows], widths))
    return "\n".join(lines)


def _line(run: str, system: str, cells: list[str], widths: list[int]) -> str:
    return f"{run:24}{system:18}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
