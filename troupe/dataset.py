"""The dataset builder: a converter's output → samples → splits, manifest, card, rejects, stories.

    troupe convert kaltsit     # writes datasets/kaltsit/{train,validation,test}.jsonl + manifest.json …

From story lines (`builder: context`, the seed's) each sample is one line of the character as the
assistant turn, the previous story lines as context in the recipe's user template, and the recipe's
system prompt; `builder: scene` writes multi-turn windows instead. Converters of ready samples
(chat logs, Q/A pairs, poems) skip the builder. One JSON object per line:
    {"messages": [{"role": "system"|"user"|"assistant", "content": …, "train"?}], "meta": {source, index, story, …}}
(or ShareGPT `conversations`, or `text` for completion). Same inputs + same recipe → byte-identical
files (the manifest's sha256 prove it).
"""

import json
import math
import random
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

from troupe import __version__, converters, provenance
from troupe.chat import conversation, user_turn
from troupe.errors import TroupeError
from troupe.files import (
    atomic_write_text,
    jsonl_text,
    new_dir_beside,
    replace_dir,
    sha256_bytes,
    sha256_file,
)
from troupe.layout import HELD_OUT, MANIFEST, SPLITS, split_file
from troupe.project import relative_to_root
from troupe.recipe import Recipe
from troupe.records import Line, Reject, Sample, reject_summary
from troupe.redact import redact
from troupe.schema import DatasetOptions, Split, TroupeSpec

META_FIELDS = ("story_code", "story_name", "avg_tag", "event_name")


# ---- samples from lines ------------------------------------------------------------------------


def is_punctuation_only(text: str) -> bool:
    """True for replies such as '......', '——' or '？！' (punctuation, symbols, spaces only)."""
    return bool(text) and all(unicodedata.category(ch)[0] in "PSZ" for ch in text)


def context_line(line: Line, options: DatasetOptions) -> str:
    """`[speaker]:text`, with narration and on-screen text labelled (the seed's format)."""
    label = line.speaker or (options.onscreen_label if line.kind == "onscreen" else options.narration_label)
    return f"[{label}]:{line.text}"


def reply_problem(reply: str, options: DatasetOptions) -> str | None:
    """Why a reply is not trained on (the manifest counts each reason), or None."""
    if len(reply) < options.min_chars:
        return "too_short"
    if len(reply) > options.max_chars:
        return "too_long"
    if options.drop_punctuation_only and is_punctuation_only(reply):
        return "punctuation_only"
    return None


def filter_reason(reply: str, context: list[Line], options: DatasetOptions) -> str | None:
    """Why a target line is not used, or None to keep it."""
    if problem := reply_problem(reply, options):
        return problem
    return "too_little_context" if len(context) < options.min_context_lines else None


def character_samples(
    lines: list[Line], spec: TroupeSpec, names: set[str] | None = None
) -> tuple[list[Sample], Counter]:
    """One sample per line of the character (or of the `names` given), with the previous lines of the
    same story as context."""
    options, names = spec.dataset, names or set(spec.character.names)
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


def story_samples(lines: list[Line], spec: TroupeSpec, leave_out: set[str]) -> list[Sample]:
    """Every speaker's lines in the recipe's chat format (context → next line), to train a base model
    on: lines whose text is in `leave_out` (the character's validation and test replies) are taken out
    of the story first, so none of them is a target or anyone's context."""
    kept = [line for line in lines if line.text not in leave_out]
    return character_samples(kept, spec, {line.speaker for line in kept if line.kind == "speech"})[0]


def scene_samples(lines: list[Line], spec: TroupeSpec) -> tuple[list[Sample], Counter]:
    """Multi-turn samples: windows of up to `scene_lines` story lines where the character's lines are
    assistant turns (`train: true`) and everyone else's are user turns (`[speaker]:text`), consecutive
    lines of one side merged. Replies the filters reject stay as context with `train: false`."""
    options, names = spec.dataset, set(spec.character.names)
    kept, dropped, seen = [], Counter(), set()
    for story in _stories(lines):
        turns = _turns(story, names)
        while turns and turns[0][0] == "assistant":  # a reply with nothing before it has no context
            dropped["too_little_context"] += len(turns.pop(0)[1])
        for window in _windows(turns, options.scene_lines):
            turns = [_scene_message(role, group, options, dropped) for role, group in window]
            messages = conversation(spec.prompt.system, turns)
            key = json.dumps(messages, ensure_ascii=False)
            if key in seen:
                dropped["duplicate"] += 1
            elif any(m["train"] for m in messages):
                seen.add(key)
                kept.append(Sample(messages, _meta(window[0][1][0])))
    return kept, dropped


def _turns(story: list[Line], names: set[str]) -> list[tuple[str, list[Line]]]:
    """(role, lines) with consecutive lines of the same side merged into one turn."""
    turns: list[tuple[str, list[Line]]] = []
    for line in story:
        role = "assistant" if line.kind == "speech" and line.speaker in names else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].append(line)
        else:
            turns.append((role, [line]))
    return turns


def _windows(turns: list[tuple[str, list[Line]]], max_lines: int) -> list[list[tuple[str, list[Line]]]]:
    """Consecutive runs of turns of at most `max_lines` lines (a longer single turn stands alone),
    each starting with a user turn and cut after its last assistant turn."""
    windows, current, size = [], [], 0
    for role, group in turns:
        if role == "user" and current and size + len(group) > max_lines:
            windows.append(current)
            current, size = [], 0
        current.append((role, group))
        size += len(group)
    windows.append(current)
    return [_up_to_last_reply(w) for w in windows if any(role == "assistant" for role, _ in w)]


def _up_to_last_reply(window: list[tuple[str, list[Line]]]) -> list[tuple[str, list[Line]]]:
    last = max(i for i, (role, _) in enumerate(window) if role == "assistant")
    return window[: last + 1]


def _scene_message(role: str, group: list[Line], options: DatasetOptions, dropped: Counter) -> dict:
    if role == "user":
        return {"role": "user", "content": "\n".join(context_line(x, options) for x in group), "train": False}
    text = "\n".join(x.text for x in group)
    reason = reply_problem(text, options)
    if reason:
        dropped[reason] += len(group)
    return {"role": "assistant", "content": text, "train": reason is None}


def _meta(line: Line) -> dict:
    meta = {"source": line.source, "index": line.index, "story": line.story}
    meta.update({key: line.meta.get(key) for key in META_FIELDS})
    return meta


def _stories(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped by (file, story), in reading order: context never crosses a story."""
    groups: dict[tuple[str, str], list[Line]] = {}
    for line in lines:
        groups.setdefault((line.source, line.story), []).append(line)
    return list(groups.values())


def _sample(line: Line, context: list[Line], spec: TroupeSpec) -> Sample:
    text = "\n".join(context_line(c, spec.dataset) for c in context)
    user = user_turn(spec.prompt.user_template, text, spec.character.name)
    messages = conversation(spec.prompt.system, [user, {"role": "assistant", "content": line.text}])
    return Sample(messages, _meta(line))


# ---- splitting ---------------------------------------------------------------------------------


def samples_of(result: converters.ReadResult, spec: TroupeSpec) -> tuple[list[Sample], Counter]:
    """Samples from a converter's output: ready samples (deduplicated) or story lines through the
    recipe's builder; an empty or mis-shaped result is an error that says what to check."""
    if result.samples:
        samples, dropped = _deduplicated(result.samples)
        completion = samples[0].messages is None
        if completion != (spec.dataset.format == "completion"):
            kind = "plain texts" if completion else "conversations"
            raise TroupeError(f"the converter wrote {kind}, but troupe.dataset.format is {spec.dataset.format!r}")
        return samples, dropped
    if not result.lines:
        raise TroupeError(f"no samples: {_nothing_read(result)}")
    builder = scene_samples if spec.dataset.builder == "scene" else character_samples
    samples, dropped = builder(result.lines, spec)
    if not samples:
        raise TroupeError(
            f"no samples: none of {len(result.lines)} lines is spoken by {spec.character.names} "
            f"(after filters: {dict(dropped)}); see `make speakers` for the names in the source"
        )
    return samples, dropped


def _nothing_read(result: converters.ReadResult) -> str:
    files = len(result.sources)
    if not result.rejects:
        return f"the source's {files} file(s) hold no records"
    return f"all {len(result.rejects)} records of {files} file(s) were rejected:\n{reject_summary(result.rejects)}"


def _deduplicated(samples: list[Sample]) -> tuple[list[Sample], Counter]:
    kept, seen = [], set()
    for sample in samples:
        key = json.dumps([sample.messages, sample.text], ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            kept.append(sample)
    return kept, Counter({"duplicate": len(samples) - len(kept)} if len(kept) < len(samples) else {})


def split_sizes(n: int, split: Split) -> tuple[int, int, int]:
    """80/10/10 of 3350 → (2680, 335, 335): train and validation floored, test takes the rest (train,
    when test's fraction is 0); a split with a fraction above 0 that would be empty takes one sample
    from the largest (7 → 4/1/2)."""
    n_train = math.floor(n * split.train + 1e-9)
    n_val = math.floor(n * split.validation + 1e-9)
    rest = n - n_train - n_val
    sizes = {"train": n_train + (0 if split.test else rest), "validation": n_val, "test": rest if split.test else 0}
    used = [name for name in SPLITS if getattr(split, name) > 0]
    if n < len(used):
        raise TroupeError(f"{n} sample(s) cannot fill the splits {', '.join(used)}; the source needs more samples")
    for name in used:
        if sizes[name] == 0:
            sizes[max(sizes, key=sizes.get)] -= 1
            sizes[name] = 1
    return sizes["train"], sizes["validation"], sizes["test"]


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
    """Whole stories to each split, the smaller splits first, until each has its share of samples;
    every split with a fraction above 0 gets at least one story (or the build fails saying why)."""
    by_story: dict[str, list[Sample]] = {}
    for sample in samples:
        by_story.setdefault(sample.meta["story"], []).append(sample)
    stories = sorted(by_story)
    rng.shuffle(stories)
    used = [name for name in (*HELD_OUT, "train") if getattr(split, name) > 0]
    if len(stories) < len(used):
        raise TroupeError(
            f"troupe.dataset.split.by story: the splits {', '.join(used)} need a story each, but the source has "
            f"{len(stories)} story(ies) with samples; use `by: sample`, add stories, or set a split's fraction to 0"
        )
    targets = dict(zip(SPLITS, split_sizes(len(samples), split), strict=True))
    out: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    for position, name in enumerate(used):
        later = len(used) - position - 1  # splits after this one, each still owed a story
        while len(stories) > later and (not out[name] or len(out[name]) < targets[name] or not later):
            out[name] += by_story[stories.pop()]
    return out


# ---- the whole build ---------------------------------------------------------------------------


def read_context(recipe: Recipe) -> converters.ReadContext:
    layout = recipe.layout
    return converters.ReadContext(recipe.root, layout.download_cache, layout.links, recipe.spec.prompt.system)


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
    """The dataset's manifest, or None when there is no complete, readable one."""
    manifest = provenance.read_record(recipe.layout.dataset_dir, "convert", MANIFEST)
    return manifest if manifest and isinstance(manifest.get("files"), dict) else None


def files_match(recipe: Recipe, manifest: dict) -> bool:
    """Every split file is there with the sha256 its manifest records."""
    for entry in manifest["files"].values():
        path = recipe.dataset_dir / str(entry.get("path", ""))
        if not path.is_file() or sha256_file(path) != entry.get("sha256"):
            return False
    return True


def trained_on_problem(recipe: Recipe, adapter: dict) -> str | None:
    """Why the splits on disk are not the ones the adapter was trained against (its record's
    `dataset_splits`), or None. Scoring other splits would score training samples as test ones."""
    manifest = read_manifest(recipe)
    rebuild = f"make convert CHARACTER={recipe.slug} with the settings it was trained with, or make train again"
    if not manifest or not files_match(recipe, manifest):
        return (
            f"{recipe.layout.rel(recipe.dataset_dir)} does not match its manifest (edited or half-written): {rebuild}"
        )
    splits = {name: entry.get("sha256") for name, entry in manifest["files"].items()}
    trained = adapter.get("dataset_splits")
    if splits != trained:
        return (
            f"{recipe.layout.rel(recipe.dataset_dir)} was rebuilt after the adapter was trained (its split "
            f"hashes differ from the adapter's record), so its test split may hold training samples: {rebuild}"
        )
    return None


def is_current(recipe: Recipe) -> bool:
    """True when the dataset's files are the ones its manifest records, and it was built from the same
    recipe block and source files (a file's presence proves nothing)."""
    manifest = read_manifest(recipe)
    return bool(manifest) and files_match(recipe, manifest) and manifest.get("fingerprint") == fingerprint(recipe)


def status(recipe: Recipe) -> str | None:
    """'dataset', 'dataset (stale)' or None, for `troupe list`."""
    manifest = read_manifest(recipe)
    if not manifest:
        return None
    try:
        return "dataset" if is_current(recipe) else "dataset (stale)"
    except (TroupeError, ValueError):
        return "dataset (stale)"


def read_source(recipe: Recipe) -> converters.ReadResult:
    """The recipe's story lines, through its converter (downloading what is not cached)."""
    module, options = converter_options(recipe)
    return module.read(options, read_context(recipe))


def speaker_table(lines: list[Line], top: int) -> str:
    """Speakers by number of lines (narration and on-screen text shown by kind), like the seed's
    count_speakers.py: the names to put in troupe.character."""
    counts = Counter(line.speaker or f"({line.kind})" for line in lines)
    rows = [
        f"{rank:>4}  {count:>6}  {count / len(lines):6.1%}  {name}"
        for rank, (name, count) in enumerate(counts.most_common(top), start=1)
    ]
    return "\n".join(
        [f"{'rank':>4}  {'lines':>6}  {'share':>6}  speaker", *rows, f"{len(counts)} speakers, {len(lines)} lines"]
    )


def discover_links(recipe: Recipe) -> tuple[Path, int, list[dict]]:
    """Rewrite the recipe's link file with every story where the character speaks (converters that
    have a story index only); returns (file, links written, stories that failed)."""
    module, options = converter_options(recipe)
    if not hasattr(module, "discover") or getattr(options, "files", None):
        raise TroupeError(
            f"the {options.converter} converter with local `files:` cannot discover stories (it needs a story index "
            "and a link list)"
        )
    links, failed = module.discover(options, read_context(recipe), recipe.spec.character.names)
    header = (
        f"# Stories where {recipe.spec.character.name} speaks, found by `troupe discover {recipe.slug}` in "
        f"the {options.server} story index ({len(links)} links).\n"
    )
    atomic_write_text(recipe.layout.links, header + "".join(link + "\n" for link in links))
    return recipe.layout.links, len(links), failed


def build(recipe: Recipe, command: str, out: Path | None = None) -> dict:
    """Convert the recipe's source into a new dataset folder and put it in place of
    datasets/<slug>/ as one unit (or into `out`, for `troupe verify`); returns the manifest. A build
    that fails or is killed leaves the previous dataset as it was."""
    dest = out or recipe.dataset_dir
    folder = new_dir_beside(dest)
    try:
        manifest = write_dataset(recipe, command, folder)
        replace_dir(folder, dest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return manifest


def write_dataset(recipe: Recipe, command: str, out: Path) -> dict:
    """Every file of the dataset folder, written into `out`; returns the manifest."""
    spec, (_, options), result = recipe.spec, converter_options(recipe), read_source(recipe)
    lines, rejects = result.lines, result.rejects
    atomic_write_text(out / "rejects.jsonl", jsonl_text(r.to_json() for r in rejects))
    _fail_above_threshold(rejects, result.records, spec.dataset.reject_threshold, out, recipe.layout)
    samples, dropped = samples_of(result, spec)
    splits = split_samples(samples, spec.dataset.split)
    files = _write_splits(out, splits, spec.dataset.format)
    write_stories(out / "stories", lines, spec.dataset)
    counts = {
        "records": result.records,
        "lines": len(lines),
        "rejected": len(rejects),
        "targets": sum(line.kind == "speech" and line.speaker in spec.character.names for line in lines)
        or len(result.samples),
        "filtered": dict(sorted(dropped.items())),
        "adjusted": dict(sorted(result.adjusted.items())),
        "samples": len(samples),
        **{name: len(splits[name]) for name in SPLITS},
    }
    made = {
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
        "leakage": leakage(splits),
        "files": files,
        "sources": result.sources,
        "missing": result.missing,
        "fingerprint": fingerprint(recipe),
    }
    manifest = provenance.record("convert", made)
    atomic_write_text(out / "card.md", redact(dataset_card(manifest)))  # the command line may hold a URL with a login
    provenance.write_record(out, manifest, MANIFEST)  # last: its presence means complete
    return manifest


def _fail_above_threshold(rejects: list[Reject], total: int, threshold: float, out: Path, layout) -> None:
    """Too many rejects fail the build, naming the most frequent reasons; the failed build's rejects
    are kept beside the dataset folder (datasets/<slug>.rejects.jsonl), which stays as it was."""
    if total and len(rejects) / total > threshold:
        kept = layout.kept_rejects
        shutil.copyfile(out / "rejects.jsonl", kept)
        raise TroupeError(
            f"{len(rejects)} of {total} records rejected ({len(rejects) / total:.1%}), above the recipe's "
            f"reject_threshold of {threshold:.0%}; the most frequent reasons:\n{reject_summary(rejects)}\n"
            f"every reject is in {layout.rel(kept)} (fix the input, or raise troupe.dataset.reject_threshold)"
        )


def _write_splits(out: Path, splits: dict[str, list[Sample]], fmt: str) -> dict:
    files = {}
    for name in SPLITS:
        text = jsonl_text(s.to_json(fmt) for s in splits[name])
        atomic_write_text(out / split_file(name), text)
        files[name] = {"path": split_file(name), "samples": len(splits[name]), "sha256": sha256_bytes(text.encode())}
    return files


def leakage(splits: dict[str, list[Sample]]) -> dict:
    """How many validation/test replies also occur, verbatim, as a train reply (seen in training)."""
    train = {reply for sample in splits["train"] for reply in sample.replies}
    return {
        f"{name}_replies_in_train": sum(reply in train for s in splits[name] for reply in s.replies)
        for name in HELD_OUT
    }


def write_stories(folder: Path, lines: list[Line], options: DatasetOptions) -> None:
    """Each story as read, for people (`<story>.txt`) and programs (`<story>.jsonl`)."""
    shutil.rmtree(folder, ignore_errors=True)
    for story in _stories(lines):
        path = (folder / story[0].story).resolve()
        if not path.is_relative_to(folder.resolve()):
            continue  # a story id that would leave the folder is never written
        atomic_write_text(path.with_name(path.name + ".txt"), "".join(context_line(x, options) + "\n" for x in story))
        atomic_write_text(path.with_name(path.name + ".jsonl"), jsonl_text(x.to_json() for x in story))


def dataset_card(manifest: dict) -> str:
    """A short card.md: what the data is, how it was made, and how to rebuild it."""
    counts, options = manifest["counts"], manifest["dataset"]
    leaks = manifest["leakage"]
    leak_val, leak_test = leaks["validation_replies_in_train"], leaks["test_replies_in_train"]
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
{options["context_lines"]} story line(s) as context, built by troupe {manifest["versions"]["troupe"]}
with the `{manifest["converter"]}` converter from {len(manifest["sources"])} source file(s){missing}.

| split | samples | sha256 |
|---|---|---|
{rows}

- story lines read: {counts["lines"]}; records rejected: {counts["rejected"]} (see `rejects.jsonl`)
- character lines: {counts["targets"]}; kept: {counts["samples"]}; filtered: {filtered}
- replies also in train (verbatim): validation {leak_val}, test {leak_test}
- replies of {options["min_chars"]}–{options["max_chars"]} characters; split {ratio} by {split["by"]} (seed {seed})
- rebuild: `{manifest["command"]}`
"""
