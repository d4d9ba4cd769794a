"""The character dataset builder: story lines → chat samples → splits, manifest, card, rejects.

    troupe convert kaltsit     # writes datasets/kaltsit/{train,validation,test}.jsonl + manifest.json …

Each sample is the character's line as the assistant turn, the previous story lines as context in
the recipe's user template, and the recipe's system prompt; one JSON object per line:
    {"messages": [{"role": "system"|"user"|"assistant", "content": …}], "meta": {source, index, story, …}}
Same inputs + same recipe → byte-identical files (the manifest's sha256 prove it).
"""

import json
import math
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import converters
from troupe import __version__
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, json_text, jsonl_text, sha256_bytes, sha256_file
from troupe.project import relative_to_root
from troupe.recipe import Recipe
from troupe.records import Line
from troupe.schema import DatasetOptions, Split, TroupeSpec

SPLITS = ("train", "validation", "test")
META_FIELDS = ("story_code", "story_name", "avg_tag", "event_name")
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass(frozen=True)
class Sample:
    messages: list[dict]
    meta: dict

    def to_json(self, fmt: str) -> dict:
        if fmt == "sharegpt":
            turns = [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in self.messages]
            return {"conversations": turns, "meta": self.meta}
        return {"messages": self.messages, "meta": self.meta}


# ---- samples from lines ------------------------------------------------------------------------


def is_punctuation_only(text: str) -> bool:
    """True for replies such as '......', '——' or '？！' (punctuation, symbols, spaces only)."""
    return bool(text) and all(unicodedata.category(ch)[0] in "PSZ" for ch in text)


def context_line(line: Line, options: DatasetOptions) -> str:
    """`[speaker]:text`, with narration and on-screen text labelled (the seed's format)."""
    label = line.speaker or (options.onscreen_label if line.kind == "onscreen" else options.narration_label)
    return f"[{label}]:{line.text}"


def render_user(template: str, context: str, character: str) -> str:
    """Fill `{context}` and `{character}` only, so braces in story text are never interpreted."""
    return template.replace("{character}", character).replace("{context}", context)


def filter_reason(reply: str, context: list[Line], options: DatasetOptions) -> str | None:
    """Why a target line is not used (the manifest counts each reason), or None to keep it."""
    if len(reply) < options.min_chars:
        return "too_short"
    if len(reply) > options.max_chars:
        return "too_long"
    if options.drop_punctuation_only and is_punctuation_only(reply):
        return "punctuation_only"
    if len(context) < options.min_context_lines:
        return "too_little_context"
    return None


def character_samples(lines: list[Line], spec: TroupeSpec) -> tuple[list[Sample], Counter]:
    """One sample per line of the character, with the previous lines of the same story as context."""
    options, names = spec.dataset, set(spec.character.names)
    kept, dropped, seen = [], Counter(), set()
    for story in _stories(lines):
        for i, line in enumerate(story):
            if line.kind != "speech" or line.speaker not in names:
                continue
            context = story[max(0, i - options.context_lines) : i] if options.context_lines else []
            reason = filter_reason(line.text, context, options)
            if reason is None:
                sample = _sample(line, context, spec)
                key = (sample.messages[-2]["content"], line.text)
                if not (options.dedupe and key in seen):
                    seen.add(key)
                    kept.append(sample)
                    continue
                reason = "duplicate"
            dropped[reason] += 1
    return kept, dropped


def _stories(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped by (file, story), in reading order: context never crosses a story."""
    groups: dict[tuple[str, str], list[Line]] = {}
    for line in lines:
        groups.setdefault((line.source, line.story), []).append(line)
    return list(groups.values())


def _sample(line: Line, context: list[Line], spec: TroupeSpec) -> Sample:
    user = render_user(
        spec.prompt.user_template, "\n".join(context_line(c, spec.dataset) for c in context), spec.character.name
    )
    system = [{"role": "system", "content": spec.prompt.system}] if spec.prompt.system else []
    messages = [*system, {"role": "user", "content": user}, {"role": "assistant", "content": line.text}]
    meta = {"source": line.source, "index": line.index, "story": line.story}
    meta.update({key: line.meta.get(key) for key in META_FIELDS})
    return Sample(messages, meta)


# ---- splitting ---------------------------------------------------------------------------------


def split_sizes(n: int, split: Split) -> tuple[int, int, int]:
    """80/10/10 of 3350 → (2680, 335, 335): train and validation floored, test takes the rest."""
    n_train = math.floor(n * split.train + 1e-9)
    n_val = math.floor(n * split.validation + 1e-9)
    return n_train, n_val, n - n_train - n_val


def split_samples(samples: list[Sample], split: Split) -> dict[str, list[Sample]]:
    """Shuffle with the recipe's seed and cut; `by: story` keeps each story inside one split."""
    rng = random.Random(split.seed)
    if split.by == "story":
        return _split_by_story(samples, split, rng)
    order = list(samples)
    rng.shuffle(order)
    n_train, n_val, _ = split_sizes(len(order), split)
    return {"train": order[:n_train], "validation": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}


def _split_by_story(samples: list[Sample], split: Split, rng: random.Random) -> dict[str, list[Sample]]:
    by_story: dict[str, list[Sample]] = {}
    for sample in samples:
        by_story.setdefault(sample.meta["story"], []).append(sample)
    stories = sorted(by_story)
    rng.shuffle(stories)
    n_train, n_val, _ = split_sizes(len(samples), split)
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for story in stories:
        target = "train" if len(out["train"]) < n_train else "validation" if len(out["validation"]) < n_val else "test"
        out[target] += by_story[story]
    return out


# ---- the whole build ---------------------------------------------------------------------------


def read_context(recipe: Recipe) -> converters.ReadContext:
    return converters.ReadContext(root=recipe.root, cache_dir=recipe.root / "datasets" / ".cache")


def converter_options(recipe: Recipe):
    """The converter module and its validated options for this recipe."""
    module = converters.load(recipe.troupe.get("source", {}).get("converter"))
    return module, module.Options.model_validate(recipe.troupe["source"])


def fingerprint(recipe: Recipe) -> str:
    """Hash of everything the dataset depends on: the troupe block and the source files' contents."""
    module, options = converter_options(recipe)
    files = [sha256_file(p) for p in module.source_files(options, read_context(recipe))]
    block = recipe.spec.model_dump(mode="json", exclude={"evaluate"})
    payload = {"troupe": __version__, "block": block, "source": options.model_dump(mode="json"), "files": files}
    return sha256_bytes(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode())


def read_manifest(recipe: Recipe) -> dict | None:
    path = recipe.dataset_dir / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def is_current(recipe: Recipe) -> bool:
    """True when the dataset exists and was built from the same recipe block and source files."""
    manifest = read_manifest(recipe)
    return bool(manifest) and manifest.get("fingerprint") == fingerprint(recipe)


def build(recipe: Recipe, command: str) -> dict:
    """Convert the recipe's source and write the dataset folder; returns the manifest."""
    spec, (module, options) = recipe.spec, converter_options(recipe)
    result = module.read(options, read_context(recipe))
    lines, rejects = result.lines, result.rejects
    out = recipe.dataset_dir
    atomic_write_text(out / "rejects.jsonl", jsonl_text(r.to_json() for r in rejects))
    _fail_above_threshold(len(rejects), len(lines) + len(rejects), spec.dataset.reject_threshold, out)
    samples, dropped = character_samples(lines, spec)
    if not samples:
        raise TroupeError(
            f"no samples: none of {len(lines)} lines is spoken by {spec.character.names} "
            f"(after filters: {dict(dropped)}); check troupe.character.name against the speakers"
        )
    splits = split_samples(samples, spec.dataset.split)
    files = _write_splits(out, splits, spec.dataset.format)
    counts = {
        "lines": len(lines),
        "rejected": len(rejects),
        "targets": len(samples) + sum(dropped.values()),
        "filtered": dict(sorted(dropped.items())),
        "samples": len(samples),
        **{name: len(splits[name]) for name in SPLITS},
    }
    manifest = {
        "troupe_version": __version__,
        "recipe": relative_to_root(recipe.path, recipe.root),
        "slug": recipe.slug,
        "command": command,
        "overrides": recipe.override_texts,
        "converter": options.converter,
        "source": options.model_dump(mode="json"),
        "character": spec.character.model_dump(mode="json"),
        "dataset": spec.dataset.model_dump(mode="json"),
        "prompt": spec.prompt.model_dump(mode="json"),
        "counts": counts,
        "files": files,
        "sources": result.sources,
        "missing": result.missing,
        "fingerprint": fingerprint(recipe),
    }
    atomic_write_text(out / "card.md", dataset_card(manifest))
    atomic_write_text(out / "manifest.json", json_text(manifest))  # last: its presence means complete
    return manifest


def _fail_above_threshold(rejected: int, total: int, threshold: float, out: Path) -> None:
    if total and rejected / total > threshold:
        raise TroupeError(
            f"{rejected} of {total} records rejected ({rejected / total:.1%}), above the recipe's "
            f"reject_threshold of {threshold:.0%}; reasons are in {out / 'rejects.jsonl'} "
            "(fix the input, or raise troupe.dataset.reject_threshold)"
        )


def _write_splits(out: Path, splits: dict[str, list[Sample]], fmt: str) -> dict:
    files = {}
    for name in SPLITS:
        text = jsonl_text(s.to_json(fmt) for s in splits[name])
        atomic_write_text(out / f"{name}.jsonl", text)
        files[name] = {"path": f"{name}.jsonl", "samples": len(splits[name]), "sha256": sha256_bytes(text.encode())}
    return files


def dataset_card(manifest: dict) -> str:
    """A short card.md: what the data is, how it was made, and how to rebuild it."""
    counts, options = manifest["counts"], manifest["dataset"]
    missing = f" ({len(manifest['missing'])} missing, listed in manifest.json)" if manifest["missing"] else ""
    split = options["split"]
    ratio, seed = "/".join(f"{split[name]:g}" for name in SPLITS), split["seed"]
    filtered = ", ".join(f"{k} {v}" for k, v in counts["filtered"].items()) or "none"
    rows = "\n".join(
        f"| {name} | {manifest['files'][name]['samples']} | `{manifest['files'][name]['sha256'][:16]}…` |"
        for name in SPLITS
    )
    return f"""# Dataset card: {manifest["slug"]}

Lines of **{manifest["character"]["name"]}** as assistant replies, with the previous
{options["context_lines"]} story line(s) as context, built by troupe {manifest["troupe_version"]}
with the `{manifest["converter"]}` converter from {len(manifest["sources"])} source file(s){missing}.

| split | samples | sha256 |
|---|---|---|
{rows}

- story lines read: {counts["lines"]}; records rejected: {counts["rejected"]} (see `rejects.jsonl`)
- character lines: {counts["targets"]}; kept: {counts["samples"]}; filtered: {filtered}
- replies of {options["min_chars"]}–{options["max_chars"]} characters; split {ratio} by {split["by"]} (seed {seed})
- rebuild: `{manifest["command"]}`
"""
