"""Arknights story JSON (the ArknightsStoryJson files behind the ASTR reader) → story lines.

    troupe convert kaltsit   # troupe.source: {converter: arknights}: the links in recipes/kaltsit.urls.txt
    troupe convert demo      # troupe.source: {converter: arknights, files: [recipes/demo/*.json]}

Stories come from ASTR reader links in the recipe's link list (downloaded once into
datasets/.cache/arknights/<origin>/, one folder per mirror so two mirrors never mix; see
troupe/converters/_astr.py and troupe/download.py) or from local files. Both layouts are read: a top-level
list of records, and an object whose `storyList` holds them (with or without eventName/figure_art,
indented or on one line). On-screen text in parts (`animtext`: `<p=1>place</><p=2>time</>`)
becomes its parts joined by " / ". A record holding a character that is not text (a byte that is
not UTF-8, NUL) is a reject with its id. Pure parsing (`parse_story`, `clean_text`) is separate from I/O (`read`),
so it is tested one story in, exact lines out.
"""

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from troupe import download as downloads
from troupe.converters import ReadResult
from troupe.converters._astr import (
    DEFAULT_BASE_URL,
    INDEX_PATH,
    SERVERS,
    StoryRef,
    index_stories,
    read_links,
    reader_link,
    story_ref,
)
from troupe.converters._files import local_files, parse_json, read_text, record_problem
from troupe.download import Fetch, Requester, RetryPolicy, fetch_all
from troupe.errors import TroupeError
from troupe.files import read_utf8, sha256_bytes, sha256_file
from troupe.project import relative_to_root
from troupe.records import Line, Reject
from troupe.schema import SourceOptions
from troupe.text import fold_whitespace

META_KEYS = {"storyCode": "story_code", "storyName": "story_name", "avgTag": "avg_tag", "eventName": "event_name"}
ONSCREEN_PROPS = {"subtitle", "sticker"}


class Options(SourceOptions):
    base_url: str = Field(
        DEFAULT_BASE_URL, description="where {server}/gamedata/story/… is fetched from (a mirror, a test server)"
    )
    workers: int = Field(8, ge=1, le=64, description="parallel downloads")
    timeout: float = Field(
        60.0, gt=0, le=600, description="seconds a server may stay silent before the attempt is retried"
    )
    retries: int = Field(5, ge=1, le=20, description="requests per story file, at most")
    deadline: float = Field(300.0, gt=0, le=3600, description="seconds per story file, all its attempts together")
    max_bytes: int = Field(16_000_000, ge=1, le=100_000_000, description="largest story file accepted, in bytes")
    allow_missing: bool = Field(
        False, description="build from the stories that downloaded, listing the rest in the manifest"
    )
    server: Literal[SERVERS] = Field("zh_CN", description="whose story index `troupe discover` reads")
    files: list[str] = Field(
        default_factory=list,
        description="local story JSON files or globs, relative to the project root; without them, the stories "
        "are the links in recipes/<slug>.urls.txt",
    )
    nickname: str = Field("博士", description="replaces {@nickname} in the text")
    player: str = Field("博士", description="speaker of Decision options (the player's words)")
    decision: Literal["all", "first"] = Field("all", description="keep all options of a Decision joined, or the first")

    @model_validator(mode="after")
    def _base_url_is_a_folder(self):
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        return self


# ---- pure core ---------------------------------------------------------------------------------

TAG_RE = re.compile(r"</?[A-Za-z][^<>]*>|</>")  # <color=#f00>…</color>, <i>…</i>, and the bare closer </>
PART_RE = re.compile(r"<p=\d+>", re.IGNORECASE)  # animtext: <p=1>罗德岛医疗部</><p=2>11:38 A.M.</>
PART_SEPARATOR = " / "
NICKNAME_RE = re.compile(r"\{@nickname\}", re.IGNORECASE)
NEWLINE_RE = re.compile(r"(\\r\\n|\\n|\\r|\r\n|\n|\r)")


def clean_text(text: str, nickname: str = "博士") -> str:
    """Tags removed (text kept), {@nickname} filled, newlines (real and literal \\n) folded,
    whitespace (full-width too) trimmed and collapsed; the parts of on-screen text (<p=N>…</>)
    joined by " / "."""
    text = NICKNAME_RE.sub(nickname, text).replace("{@nbs}", " ")
    parts = (fold_whitespace(NEWLINE_RE.sub(" ", TAG_RE.sub("", part))) for part in PART_RE.split(text))
    return PART_SEPARATOR.join(part for part in parts if part)


def story_records(data: Any) -> tuple[list, dict]:
    """(records, story metadata) for either layout; ValueError for anything else."""
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict) and "storyList" in data:
        if not isinstance(data["storyList"], list):
            raise ValueError("'storyList' is not a list")
        return data["storyList"], {new: data[old] for old, new in META_KEYS.items() if isinstance(data.get(old), str)}
    raise ValueError("not a story: expected a list of records or an object with 'storyList'")


def parse_story(data: Any, story: str, source: str, options: Options) -> tuple[list[Line], list[Reject]]:
    """Every text-bearing record of one story as a Line, in order; unusable records as Rejects."""
    records, meta = story_records(data)
    lines, rejects, pending = [], [], []
    for position, record in enumerate(records):
        index = record.get("id", position) if isinstance(record, dict) else position
        if problem := record_problem(record):
            rejects.append(Reject(source, index if isinstance(index, int) else position, problem))
            continue
        try:
            found = _record_text(record, pending, options)
        except ValueError as exc:
            rejects.append(Reject(source, index, str(exc), record))
            continue
        if found:
            speaker, text, kind = found
            lines.append(Line(speaker, text, kind, story, index, source, meta))
    return [line for line in lines if line.text], rejects


def _record_text(record: Any, pending: list[str], options: Options) -> tuple[str | None, str, str] | None:
    """(speaker, cleaned text, kind) for a text record, None for others; ValueError if unusable."""
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    prop = str(record.get("prop", "")).lower()
    if prop not in ("name", "multiline", "animtext", "decision", *ONSCREEN_PROPS):
        return None
    attrs = record.get("attributes")
    if not isinstance(attrs, dict):
        raise ValueError(f"'{prop}' record has no attributes")
    if prop == "multiline":
        return _multiline(attrs, pending, options)
    if prop == "name":
        speaker = _speaker(attrs.get("name"), options)
        return speaker, _text(attrs, "content", options), "speech" if speaker else "narration"
    if prop == "decision":
        return options.player, _decision(attrs, options), "choice"
    key = "content" if prop == "animtext" else "text"
    return (None, _text(attrs, key, options), "onscreen") if attrs.get(key) is not None else None


def _text(attrs: dict, key: str, options: Options) -> str:
    value = attrs.get(key)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is {type(value).__name__}, not text")
    return clean_text(value, options.nickname)


def _speaker(name: Any, options: Options) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"speaker name is {type(name).__name__}, not text")
    return clean_text(name, options.nickname) or None


def _multiline(attrs: dict, pending: list[str], options: Options):
    """Pieces of one line split over records: collected until `end`, then returned once."""
    pending.append(_text(attrs, "content", options))
    if not attrs.get("end"):
        return None
    text = clean_text(attrs["joined"], options.nickname) if isinstance(attrs.get("joined"), str) else "".join(pending)
    pending.clear()
    speaker = _speaker(attrs.get("name"), options)
    return speaker, text, "speech" if speaker else "narration"


def _decision(attrs: dict, options: Options) -> str:
    raw = attrs.get("options")
    if not isinstance(raw, str):
        raise ValueError("Decision has no 'options' text")
    choices = [c for c in (clean_text(o, options.nickname) for o in raw.split(";")) if c]
    return choices[0] if choices and options.decision == "first" else " / ".join(choices)


# ---- I/O edge ----------------------------------------------------------------------------------


def links_name(ctx) -> str:
    return relative_to_root(ctx.links, ctx.root)


def linked_stories(ctx) -> tuple[list[tuple[int, StoryRef]], list[tuple[int, str, str]]]:
    if not ctx.links.is_file():
        raise TroupeError(
            f"{links_name(ctx)} does not exist: the recipe reads its stories from this file of ASTR links, one "
            "per line (make discover writes it), or from `troupe.source.files`"
        )
    return read_links(read_utf8(ctx.links, what="a link list"))


def origin_folder(base_url: str) -> str:
    """The cache folder of one mirror: its host and a hash of the normalised base URL, so stories from
    two mirrors with the same paths never stand in for each other."""
    parts = urlsplit(base_url)
    normal = f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}{parts.path.rstrip('/')}/"
    host = re.sub(r"[^a-z0-9.-]", "_", (parts.hostname or "local").lower())
    return f"{host}-{sha256_bytes(normal.encode())[:12]}"


def cache_path(ctx, options: Options, path: str) -> Path:
    return ctx.cache_dir / "arknights" / origin_folder(options.base_url) / path


def story_cache(ctx, options: Options, ref: StoryRef) -> Path:
    return cache_path(ctx, options, f"{ref.server}/{ref.story}.json")


def source_files(options: Options, ctx) -> list[Path]:
    """Every input file the dataset depends on (the link file and the cached stories, or local files)."""
    if options.files:
        return local_files(options.files, ctx.root)
    refs, _ = linked_stories(ctx)
    return [ctx.links, *[p for _, ref in refs if (p := story_cache(ctx, options, ref)).is_file()]]


def retry_policy(options: Options) -> RetryPolicy:
    return RetryPolicy(
        attempts=options.retries,
        timeout=(min(10.0, options.timeout), options.timeout),
        deadline=options.deadline,
        max_bytes=options.max_bytes,
    )


def fetch_stories(refs: list[tuple[str, StoryRef]], options: Options, ctx) -> tuple[list[StoryRef], list[dict]]:
    """Fetch (label, story) pairs into the cache; (stories available, failures as {link, reason})."""
    items = {ref: Fetch(options.base_url + ref.json_path, story_cache(ctx, options, ref), label) for label, ref in refs}
    report = fetch_all(list(items.values()), _parse_json_bytes, options.workers, retry_policy(options))
    print(f"stories: {report.summary()}")
    failures = [{"link": item.label, "reason": why} for item, why in report.failed]
    return [ref for ref, item in items.items() if item.dest.is_file()], failures


def download(options: Options, ctx) -> tuple[list[StoryRef], list[dict]]:
    """Fetch the linked stories; a refused link or a failed download is an error unless `allow_missing`."""
    refs, refused = linked_stories(ctx)
    name = links_name(ctx)
    available, failures = fetch_stories([(f"{name}:{line}", ref) for line, ref in refs], options, ctx)
    failures = [{"link": f"{name}:{n}", "reason": f"{link}: {why}"} for n, link, why in refused] + failures
    if failures and not options.allow_missing:
        listed = "\n".join(f"  {f['link']}: {f['reason']}" for f in failures)
        raise TroupeError(
            f"{len(failures)} story link(s) failed (set troupe.source.allow_missing to build without them):\n{listed}"
        )
    return available, failures


def discover(options: Options, ctx, names: list[str]) -> tuple[list[str], list[dict]]:
    """Reader links of every story in the server's index where one of `names` speaks, and the
    stories that could not be fetched. The index is always fetched anew; stories go through the cache."""
    index_path = INDEX_PATH.format(server=options.server)
    index = Fetch(options.base_url + index_path, cache_path(ctx, options, index_path), "story index")
    try:
        downloads.download(Requester(retry_policy(options)), index, _parse_json_bytes)
    except RuntimeError as exc:
        raise TroupeError(f"could not fetch the story index: {exc}") from None
    try:
        stories = index_stories(_load_json(index.dest))
    except ValueError as exc:  # valid JSON of another shape (a list, a string): a mirror's answer, not a bug
        raise TroupeError(f"the story index {index_path} from {options.base_url}: {exc}") from None
    refs, unsafe = [], []
    for story in stories:
        try:
            refs.append((story, story_ref(options.server, story)))
        except ValueError as exc:
            unsafe.append({"link": story, "reason": str(exc)})
    available, failures = fetch_stories(refs, options, ctx)
    links = [reader_link(ref) for ref in available if _speaks(story_cache(ctx, options, ref), names, options)]
    return links, unsafe + failures


def _speaks(path: Path, names: list[str], options: Options) -> bool:
    try:
        lines, _ = parse_story(_load_json(path), path.stem, path.name, options)
    except ValueError:
        return False
    return any(line.speaker in names for line in lines)


def read(options: Options, ctx) -> ReadResult:
    """Parse every story. A file that is not JSON or not a story stops the build naming it: how many
    lines it held cannot be counted, and one reject for a whole story would hide the loss."""
    missing = []
    if options.files:
        stories = [(path, path.stem, relative_to_root(path, ctx.root)) for path in local_files(options.files, ctx.root)]
    else:
        refs, missing = download(options, ctx)
        stories = [(story_cache(ctx, options, ref), ref.story_id, ref.json_path) for ref in refs]
    lines, rejects, sources = [], [], []
    for path, story, source in stories:
        sources.append({"path": source, "sha256": sha256_file(path)})
        try:
            story_lines, story_rejects = parse_story(_load_json(path), story, source, options)
        except ValueError as exc:
            raise TroupeError(f"{source}: {exc}; repair the file or leave it out of troupe.source.files") from None
        lines += story_lines
        rejects += story_rejects
    return ReadResult(lines, rejects, sources, missing)


def _parse_json_bytes(body: bytes):
    """A downloaded story, or ValueError (it is then retried, never cached)."""
    try:
        return parse_json(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None


def _load_json(path: Path) -> Any:
    return parse_json(read_text(path))
