"""The Gemma-family recipes (kaltsit, leprechaun, yoda, tang_poetry) as Axolotl tokenises them with
Gemma 3's real tokenizer (262,144 tokens, from its registry package: troupe base gemma3-270m-tokenizer)
and the Gemma chat layout: what is rendered, which tokens are trained, and where a turn stops.

Gemma 2 (leprechaun, yoda, tang_poetry) writes turns exactly so (`<start_of_turn>user … <end_of_turn>`,
the reply's turn is `model`) on a 256,000-token vocabulary, and its template refuses a system turn
(Gemma 3's folds it into the first user turn). Gemma 4 (kaltsit's base) differs: `<|turn>role …
<turn|>` with a system turn of its own and `<turn|>` as the end of turn (tests/test_gemma4_kaltsit.py
checks that template on the Gemma 4 architecture); here kaltsit's data is rendered the Gemma 3 way.
"""

import shutil

import pytest
from helpers import REPO, cli, trained_spans

from troupe.files import read_jsonl

pytestmark = pytest.mark.slow
TOKENIZER = "models/gemma3-270m-tokenizer"
GEMMA3 = [f"base_model={TOKENIZER}", 'eot_tokens=["<end_of_turn>"]']
OFFLINE_KALTSIT = ["troupe.source.files=[recipes/demo/*.json]", "troupe.character.name=闻钟"]
RECIPES = {"leprechaun": [], "yoda": [], "kaltsit": OFFLINE_KALTSIT}
SAMPLES = 8  # per recipe: Axolotl's chat-template strategy takes ~0.3 s a sample with a 262k vocabulary


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma3")
    shutil.copytree(REPO / "recipes", root / "recipes")
    shutil.copytree(REPO / "configs", root / "configs")
    cli("base", "gemma3-270m-tokenizer", root=root)
    return root


@pytest.fixture(scope="module")
def tokenizer(root):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(root / TOKENIZER)


def tokenised(root, tokenizer, slug: str, *overrides: str) -> list[tuple[dict, dict]]:
    """(record, Axolotl's tokenised row) for the first training samples, through Axolotl's own prompt
    strategy for the recipe's dataset type, with the recipe's resolved config."""
    from axolotl.prompt_strategies import load
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    from troupe import dataset
    from troupe.recipe import load_recipe
    from troupe.render import resolve

    recipe = load_recipe(slug, [*GEMMA3, *overrides], root=root)
    dataset.build(recipe, f"troupe convert {slug}")
    config = validate_config(DictDefault(resolve(recipe, cuda=False).config))
    entry = config.datasets[0]
    strategy = load(entry.type, tokenizer, config, entry)
    records = read_jsonl(recipe.layout.split("train"))[:SAMPLES]
    assert len(records) == SAMPLES
    if "text" in records[0]:  # completion: a batch of texts in, a batch of rows out
        return [(r, {k: v[0] for k, v in strategy.tokenize_prompt({"text": [r["text"]]}).items()}) for r in records]
    return [(record, strategy.tokenize_prompt(record)) for record in records]


def test_the_tokenizer_is_gemma_3s_own(tokenizer):
    assert len(tokenizer.get_vocab()) >= 262_000
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<bos>", "<eos>", "<pad>")
    for marker in ("<start_of_turn>", "<end_of_turn>"):  # each one token, never split
        assert len(tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("slug", list(RECIPES))
def test_chat_recipes_train_the_reply_and_its_end_of_turn_only(root, tokenizer, slug):
    for record, row in tokenised(root, tokenizer, slug, *RECIPES[slug]):
        turns = record["messages"]
        system = turns[0]["content"] + "\n\n" if turns[0]["role"] == "system" else ""
        user, reply = turns[-2]["content"], turns[-1]["content"]
        expected = (
            f"<bos><start_of_turn>user\n{system}{user.strip()}<end_of_turn>\n<start_of_turn>model\n{reply.strip()}"
        )
        assert tokenizer.decode(row["input_ids"]).startswith(expected)  # the Gemma layout, system folded in
        (span,) = trained_spans(row["input_ids"], row["labels"])
        assert tokenizer.decode(span) == reply.strip() + "<end_of_turn>"  # the stop token is learned
        assert span[-1] == tokenizer.convert_tokens_to_ids("<end_of_turn>")


def test_poems_train_every_token_and_end_with_eos(root, tokenizer):
    for record, row in tokenised(root, tokenizer, "tang_poetry"):
        assert row["input_ids"][0] == tokenizer.bos_token_id and row["input_ids"][-1] == tokenizer.eos_token_id
        (span,) = trained_spans(row["input_ids"], row["labels"])  # <bos>'s label is never predicted (shifted)
        assert tokenizer.decode(span) == f"<bos>{record['text']}<eos>"  # the poem, word for word, then the stop
