"""converters._astr: every ASTR link shape → the story file behind it; unsafe links refused."""

import pytest

from troupe.converters._astr import StoryRef, parse_link, read_links

SITE = "https://050644zf.github.io/ArknightsStoryTextReader/"


@pytest.mark.parametrize(
    "link, server, story",
    [
        (f"{SITE}#/zh_CN/content?f=obt/main/level_main_08-12_end", "zh_CN", "obt/main/level_main_08-12_end"),
        (
            "https://astr.pages.dev/#/zh_CN/content?f=obt%2Fmain%2Flevel_main_08-12_end",
            "zh_CN",
            "obt/main/level_main_08-12_end",
        ),
        (f"{SITE}#/zh_CN/content?f=obt/main/level_main_08-12_end#line19", "zh_CN", "obt/main/level_main_08-12_end"),
        (f"{SITE}?s=zh_CN&f=obt/main/level_main_08-12_end&warp=line19", "zh_CN", "obt/main/level_main_08-12_end"),
        (f"{SITE}?f=activities/a001/level_a001_ex06_end", "zh_CN", "activities/a001/level_a001_ex06_end"),
        (f"{SITE}#/en_US/content?f=obt/main/level_main_08-12_end", "en_US", "obt/main/level_main_08-12_end"),
        (
            f"{SITE}#/ja_JP/content?f=Obt/Roguelike/RO1/level_rogue1_entry",
            "ja_JP",
            "Obt/Roguelike/RO1/level_rogue1_entry",
        ),
        ("zh_TW/gamedata/story/obt/main/level_main_04-03_beg.json", "zh_TW", "obt/main/level_main_04-03_beg"),
        ("/ko_KR/gamedata/story/obt/main/level_main_04-03_beg.json", "ko_KR", "obt/main/level_main_04-03_beg"),
        (
            "https://raw.githubusercontent.com/050644zf/ArknightsStoryJson/main/zh_CN/gamedata/story/obt/main/x_1.json",
            "zh_CN",
            "obt/main/x_1",
        ),
    ],
)
def test_link_shapes(link, server, story):
    assert parse_link(link) == StoryRef(server, story)


def test_raw_file_path_from_a_link():
    ref = parse_link(f"{SITE}#/zh_CN/content?f=obt/main/level_main_08-12_end")
    assert ref.json_path == "zh_CN/gamedata/story/obt/main/level_main_08-12_end.json"


@pytest.mark.parametrize(
    "link, reason",
    [
        (f"{SITE}#/zh_CN/menu", "no story in this link"),
        (f"{SITE}#/zh_CN/content", "no story in this link"),
        (f"{SITE}#/xx_XX/content?f=obt/main/a", "unknown server 'xx_XX'"),
        (f"{SITE}#/zh_CN/content?f=../../etc/passwd", "unsafe story path"),
        (f"{SITE}#/zh_CN/content?f=/etc/passwd", "unsafe or empty story path"),
        (f"{SITE}#/zh_CN/content?f=obt\\main\\a", "unsafe or empty story path"),
        (f"{SITE}#/zh_CN/content?f=obt%2F..%2F..%2Fsecret", "unsafe story path"),
        ("zh_CN/gamedata/story/obt/../../x.json", "unsafe story path"),
        ("https://example.com/page", "not an ASTR story link"),
    ],
)
def test_refused_links_say_why(link, reason):
    with pytest.raises(ValueError, match=reason):
        parse_link(link)


def test_link_file_skips_comments_blanks_and_duplicates_and_numbers_refusals():
    text = "\n".join(
        [
            "# my links",
            "",
            f"{SITE}#/zh_CN/content?f=obt/main/a",
            f"{SITE}#/zh_CN/menu",
            f"  {SITE}?s=zh_CN&f=obt/main/a  ",
            f"{SITE}#/en_US/content?f=obt/main/a",
        ]
    )
    refs, refused = read_links(text)
    assert refs == [(3, StoryRef("zh_CN", "obt/main/a")), (6, StoryRef("en_US", "obt/main/a"))]
    assert [(line, reason.split(" (")[0]) for line, _, reason in refused] == [(4, "no story in this link")]


def test_windows_line_endings_and_trailing_notes_are_fine():
    refs, refused = read_links(f"{SITE}#/zh_CN/content?f=obt/main/a  # 第一章\r\n\r\n{SITE}?f=obt/main/b\r\n")
    assert [ref.story for _, ref in refs] == ["obt/main/a", "obt/main/b"] and not refused
