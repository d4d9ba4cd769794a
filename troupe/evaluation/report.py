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
    ("AI-identity leaks", "ai_identity_rate", "{:.0%}"),
]
SAMPLES_SHOWN = 20


def cell(value, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, int | float) else "-"


def summary_rows(scores: dict) -> list[tuple[str, list[str]]]:
    """(label, one formatted value per system) for the headline numbers, style included."""
    names = list(scores["systems"])
    rows = [(label, [cell(scores["systems"][n].get(key), fmt) for n in names]) for label, key, fmt in SUMMARY_ROWS]
    if scores["style"]["available"]:
        styled = scores["style"]["systems"]
        rows.append(
            (
                "style P(character)",
                [f"{styled[n]['mean']:.2f} [{styled[n]['low']:.2f}, {styled[n]['high']:.2f}]" for n in names],
            )
        )
    return rows


def summary_table(scores: dict) -> str:
    """A plain table of the headline numbers per system (printed at the end of `make evaluate`)."""
    names = list(scores["systems"])
    lines = [f"{'':20}" + "".join(f"{n:>20}" for n in names)]
    lines += [f"{label:20}" + "".join(f"{v:>20}" for v in values) for label, values in summary_rows(scores)]
    if scores["style"]["available"]:
        diff = scores["style"]["adapter_minus_base"]
        lines.append(
            f"style adapter − base: {diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}] "
            f"(classifier held-out accuracy {scores['style']['held_out_accuracy']:.0%})"
        )
    return "\n".join(lines)


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
<table id="summary"><tr><th></th>{% for n in systems %}<th>{{ n }}</th>{% endfor %}</tr>
{% for label, values in rows %}<tr><td>{{ label }}</td>
{% for v in values %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if style.available %}<p>Style classifier: held-out accuracy {{ "%.0f%%" % (100 * style.held_out_accuracy) }} on
{{ style.lines.character }} lines of the character and {{ style.lines.other }} of other voices; references score
{{ "%.2f" % style.systems.references.mean }}; adapter − base {{ "%+.3f" % style.adapter_minus_base.mean }}
[{{ "%+.3f" % style.adapter_minus_base.low }}, {{ "%+.3f" % style.adapter_minus_base.high }}].</p>
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
<h2>Red-team probes</h2>
<table id="probes"><tr><th>probe</th>{% for n in systems %}<th>{{ n }}</th>{% endfor %}</tr>
{% for t in probes %}<tr><td>{{ t.probe }}</td>{% for n in systems %}<td>{{ t[n] }}</td>{% endfor %}</tr>{% endfor %}
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
            rows=summary_rows(scores),
            style=scores["style"],
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
HEADLINES = [row for row in SUMMARY_ROWS if row[1] in HEADLINE_KEYS]  # the summary's rows, fewer of them


def compare_table(runs: dict[str, dict]) -> str:
    """Headline numbers of the adapter system across runs (`troupe compare`), one row per run."""
    header = f"{'run':24}" + "".join(f"{label:>18}" for label, _, _ in HEADLINES) + f"{'style':>8}"
    lines = [header]
    for name, scores in runs.items():
        adapter = scores["systems"]["adapter"]
        styled = scores["style"]["systems"]["adapter"]["mean"] if scores["style"]["available"] else None
        lines.append(
            f"{name:24}"
            + "".join(f"{cell(adapter.get(k), f):>18}" for _, k, f in HEADLINES)
            + f"{cell(styled, '{:.2f}'):>8}"
        )
    return "\n".join(lines)
