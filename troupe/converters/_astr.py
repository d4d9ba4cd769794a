"""ASTR (Arknights Story Text Reader) links → the story files behind them in ArknightsStoryJson.

Every link shape the reader has used maps to `{server}/gamedata/story/{storyTxt}.json`:
    https://050644zf.github.io/ArknightsStoryTextReader/#/zh_CN/content?f=obt/main/level_main_08-12_end
    https://astr.pages.dev/#/en_US/content?f=obt%2Fmain%2Flevel_main_08-12_end#line19
    https://050644zf.github.io/ArknightsStoryTextReader/?s=zh_CN&f=obt/main/level_main_08-12_end&warp=line19
    zh_CN/gamedata/story/obt/main/level_main_04-03_beg.json     (or a raw URL ending like this)
Pure functions: a link in, a StoryRef or a ValueError with the reason out.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SERVERS = ("zh_CN", "en_US", "ja_JP", "ko_KR", "zh_TW")
DEFAULT_BASE_URL = "https://raw.githubusercontent.com/050644zf/ArknightsStoryJson/main/"
READER_URL = "https://050644zf.github.io/ArknightsStoryTextReader/#/{server}/content?f={story}"
INDEX_PATH = "{server}/gamedata/excel/story_review_table.json"
STORY_MARKER = "/gamedata/story/"
SEGMENT_RE = re.compile(r"^[A-Za-z0-9_\-.]+$")


@dataclass(frozen=True, order=True)
class StoryRef:
    server: str
    story: str  # the reader's `f` value (storyTxt), e.g. obt/main/level_main_08-12_end

    @property
    def json_path(self) -> str:
        return f"{self.server}/gamedata/story/{self.story}.json"

    @property
    def story_id(self) -> str:
        return f"{self.server}/{self.story}"


def parse_link(link: str) -> StoryRef:
    """The story a link points at; ValueError says why a link has none or is unsafe."""
    link = link.strip()
    if STORY_MARKER in link or link.startswith(tuple(f"{s}/gamedata/" for s in SERVERS)):
        server, story = _from_story_path(link)
    else:
        server, story = _from_reader_url(link)
    return story_ref(server, story)


def _from_story_path(link: str) -> tuple[str, str]:
    path = unquote(urlsplit(link).path if "://" in link else link)
    before, _, after = ("/" + path.lstrip("/")).partition(STORY_MARKER)
    if not after.endswith(".json"):
        raise ValueError("a story path must end in .json")
    return before.rstrip("/").rsplit("/", 1)[-1], after[: -len(".json")]


def _from_reader_url(link: str) -> tuple[str, str]:
    parts = urlsplit(link)
    if parts.fragment.startswith("/"):  # current reader: #/{server}/content?f={storyTxt}[#line19]
        route = parts.fragment.partition("#")[0]
        path, _, query = route.partition("?")
        segments = path.strip("/").split("/")
        story = parse_qs(query).get("f", [None])[0]
        if len(segments) != 2 or segments[1] != "content" or not story:
            raise ValueError(f"no story in this link (reader page '{path}'; a story link has #/<server>/content?f=…)")
        return segments[0], story
    legacy = parse_qs(parts.query)  # v1 reader: ?s={server}&f={storyTxt}&warp=line{id}
    if "f" not in legacy:
        raise ValueError("not an ASTR story link (no #/<server>/content?f=… and no ?f=…)")
    return legacy.get("s", ["zh_CN"])[0], legacy["f"][0]


def story_ref(server: str, story: str) -> StoryRef:
    if server not in SERVERS:
        raise ValueError(f"unknown server '{server}' (known: {', '.join(SERVERS)})")
    story = story.strip()
    if not story or story.startswith("/") or "\\" in story:
        raise ValueError(f"unsafe or empty story path '{story}'")
    if story.endswith(".json"):
        story = story[: -len(".json")]
    segments = story.split("/")
    if any(seg in ("", ".", "..") or not SEGMENT_RE.match(seg) for seg in segments):
        raise ValueError(f"unsafe story path '{story}' (only letters, digits, '_', '-', '.' between '/')")
    return StoryRef(server, story)


def read_links(text: str) -> tuple[list[tuple[int, StoryRef]], list[tuple[int, str, str]]]:
    """(line number, story) for each link, first occurrence only, and (line, link, reason) for each
    refused one. Blank lines and lines starting with '#' are skipped."""
    refs, refused, seen = [], [], set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            ref = parse_link(line)
        except ValueError as exc:
            refused.append((number, line, str(exc)))
            continue
        if ref not in seen:
            seen.add(ref)
            refs.append((number, ref))
    return refs, refused


def index_stories(data: object) -> list[str]:
    """Every `storyTxt` of a story_review_table.json (event id → {infoUnlockDatas: [...]}), in order,
    once each."""
    if not isinstance(data, dict):
        raise ValueError("story_review_table.json should map event ids to events")
    found: dict[str, None] = {}
    for event in data.values():
        for info in (event.get("infoUnlockDatas") or []) if isinstance(event, dict) else []:
            if isinstance(info, dict) and isinstance(info.get("storyTxt"), str):
                found.setdefault(info["storyTxt"], None)
    return list(found)


def reader_link(ref: StoryRef) -> str:
    return READER_URL.format(server=ref.server, story=ref.story)
