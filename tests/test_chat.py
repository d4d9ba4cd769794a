"""troupe.chat: one system turn and one role map for training, evaluation and serve."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import REPO

from troupe import serve
from troupe.chat import MESSAGE_ROLES, ROLES, SHAREGPT_ROLES, as_messages, as_sharegpt, conversation
from troupe.dataset import character_samples, scene_samples
from troupe.evaluation import probe_prompts
from troupe.recipe import load_recipe
from troupe.records import Line, Sample

USER, REPLY = {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}


def test_the_system_turn_opens_a_conversation_unless_there_is_none_or_one_already():
    assert conversation("s", [USER, REPLY]) == [{"role": "system", "content": "s"}, USER, REPLY]
    assert conversation("", [USER]) == conversation(None, [USER]) == [USER]
    own = {"role": "system", "content": "a client's"}
    assert conversation("s", [own, USER]) == [own, USER]


def test_with_train_flags_the_system_turn_is_never_trained():
    turns = [{**USER, "train": False}, {**REPLY, "train": True}]
    assert conversation("s", turns)[0] == {"role": "system", "content": "s", "train": False}


def test_the_role_maps_read_back_what_they_write():
    messages = conversation("s", [USER, REPLY])
    assert as_sharegpt(messages)[1] == {"from": "human", "value": "u"}
    assert as_messages({"conversations": as_sharegpt(messages)}) == messages
    assert as_messages(Sample(messages, {}).to_json("sharegpt")) == messages


class FakeTokenizer:
    """Records the conversation serve renders."""

    def __init__(self):
        self.rendered = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.rendered.append(messages)
        return "prompt"

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [1, 2]}


def served_character(recipe, monkeypatch) -> serve.Character:
    """Character(recipe) as `troupe serve` builds it, with the model loading left out."""
    tokenizer = FakeTokenizer()
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64))
    choice = SimpleNamespace(kind="merged", folder=Path("merged"), note="")
    monkeypatch.setattr(serve.provenance, "model_to_load", lambda layout: choice)
    monkeypatch.setattr(serve.provenance, "training_config", lambda layout: {})
    monkeypatch.setattr(serve, "load_model", lambda *args, **kwargs: (model, tokenizer))
    monkeypatch.setattr(serve, "stop_token_ids", lambda *args: [])
    monkeypatch.setattr(serve, "utf8_guard", lambda tokenizer: None)
    return serve.Character(recipe)


@pytest.mark.parametrize("slug", ["demo", "sherlock"])
def test_training_evaluation_and_serve_open_with_the_same_system_turn(slug, monkeypatch):
    recipe = load_recipe(slug, root=REPO)
    name = recipe.spec.character.name
    story = [Line("Watson", "Holmes?", "speech", "s1", 0, "f"), Line(name, "Elementary.", "speech", "s1", 1, "f")]
    trained = character_samples(story, recipe.spec)[0][0].messages
    scene = scene_samples(story, recipe.spec)[0][0].messages
    evaluated = probe_prompts(recipe, []).identity[0]
    character = served_character(recipe, monkeypatch)
    character.prompt_ids([{"role": "user", "content": "Who are you?"}])
    served = character.tokenizer.rendered[0]
    first = {"role": "system", "content": recipe.spec.prompt.system}
    assert recipe.spec.prompt.system
    assert trained[0] == evaluated[0] == served[0] == first
    assert {k: scene[0][k] for k in first} == first


def test_every_role_read_is_a_message_role_and_every_message_role_is_written():
    assert set(ROLES.values()) == set(MESSAGE_ROLES) == set(SHAREGPT_ROLES)
    assert all(ROLES[name] == role for role, name in SHAREGPT_ROLES.items())
