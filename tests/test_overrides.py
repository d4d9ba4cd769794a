"""troupe.overrides: key=value words → typed values placed in the recipe."""

import pytest

from troupe.errors import TroupeError
from troupe.overrides import apply_override, parse_overrides


@pytest.mark.parametrize(
    "word, value",
    [
        ("max_steps=2", 2),
        ("bf16=false", False),
        ("learning_rate=5e-5", 5e-5),
        ("lr=1.5E+3", 1500.0),
        ("base_model=/tmp/x", "/tmp/x"),
        ("eot_tokens=[a, b]", ["a", "b"]),
        ("warmup_steps=null", None),
        ("troupe.source.base_url=http://127.0.0.1:8000/", "http://127.0.0.1:8000/"),
        ("name=", ""),
    ],
)
def test_values_are_parsed_as_yaml(word, value):
    (override,) = parse_overrides([word])
    assert override.value == value
    assert override.text == word


def test_dotted_keys_reach_nested_mappings_and_lists():
    data = {"troupe": {"source": {"converter": "arknights"}}, "datasets": [{"path": "a"}]}
    for override in parse_overrides(["troupe.source.base_url=http://x/", "datasets.0.path=b", "troupe.new.key=1"]):
        apply_override(data, override)
    assert data == {
        "troupe": {"source": {"converter": "arknights", "base_url": "http://x/"}, "new": {"key": 1}},
        "datasets": [{"path": "b"}],
    }


def test_malformed_words_are_all_named():
    with pytest.raises(TroupeError, match="'max_steps', '=2', 'a b=1'"):
        parse_overrides(["max_steps", "=2", "a b=1", "ok=1"])


@pytest.mark.parametrize("word, message", [("datasets.5.path=x", "not an index"), ("seed.x=1", "not a mapping")])
def test_paths_that_do_not_exist_are_errors(word, message):
    data = {"datasets": [{"path": "a"}], "seed": 42}
    with pytest.raises(TroupeError, match=message):
        apply_override(data, parse_overrides([word])[0])
