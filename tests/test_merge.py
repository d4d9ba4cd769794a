"""troupe.merge: the merged folder gets the tokenizer and chat template used in training back.

Axolotl's default merge copies the *base* model's tokenizer files; when training used another
template (e.g. `chat_template: chatml` on a base without one), that template would be lost."""

import pytest

from troupe.demo.tiny import train_tokenizer
from troupe.errors import TroupeError
from troupe.merge import restore_tokenizer, verify_chat_template


@pytest.fixture
def folders(tmp_path):
    trained, merged = tmp_path / "adapter", tmp_path / "merged"
    tokenizer = train_tokenizer(["雾港的夜很长。", "说下去。"] * 5, vocab_size=300)
    tokenizer.save_pretrained(trained)  # what training saved next to the adapter
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(merged)  # what the merge copied from the base model
    return trained, merged


def test_merge_without_restoring_loses_the_template(folders):
    with pytest.raises(TroupeError, match="chat template differs"):
        verify_chat_template(*folders)


def test_restore_brings_back_the_trained_template(folders):
    trained, merged = folders
    copied = restore_tokenizer(trained, merged)
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= set(copied)
    verify_chat_template(trained, merged)
