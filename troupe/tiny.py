"""A tiny model built locally, so the whole pipeline runs offline on a CPU in seconds.

    troupe tiny-model --recipe demo --out models/tiny

A byte-level BPE tokenizer is trained on the recipe's dataset text, with a Gemma-style chat
template (`<|turn>role … <turn|>`, where the end-of-turn token is not eos, as in real Gemma), and a
randomly initialised 2-layer Llama-architecture decoder is saved beside it. Same text → same files.
"""

import json
from collections.abc import Iterable
from pathlib import Path

from troupe.files import json_text, read_jsonl, sha256_bytes

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<|turn>", "<turn|>"]
END_OF_TURN = "<turn|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<|turn>{{ role }}\n{{ message['content'] | trim }}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
SHAPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)


def dataset_texts(dataset_dir: Path) -> list[str]:
    """Every message of every split, in file order (the tokenizer's training text)."""
    texts = []
    for split in ("train", "validation", "test"):
        for record in read_jsonl(dataset_dir / f"{split}.jsonl"):
            turns = record.get("messages") or record.get("conversations") or []
            texts += [t.get("content") or t.get("value") or "" for t in turns]
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE (any text encodes, nothing is unknown) wrapped as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|turn>", END_OF_TURN],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def random_model(tokenizer, seed: int):
    """A randomly initialised small Llama-architecture decoder sized to the tokenizer."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    ids = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, **SHAPE, **ids))
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    model.generation_config = GenerationConfig(**{**ids, "eos_token_id": stop})
    return model


def build_tiny_model(out: Path, texts: list[str], vocab_size: int = 2048, seed: int = 0) -> bool:
    """Write tokenizer + model to `out`; returns False (and does nothing) if the same text built it already."""
    stamp = sha256_bytes(json.dumps([texts, vocab_size, seed, SHAPE, CHAT_TEMPLATE], ensure_ascii=False).encode())
    stamp_file = out / "troupe_tiny.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text())["stamp"] == stamp:
        return False
    tokenizer = train_tokenizer(texts, vocab_size)
    random_model(tokenizer, seed).save_pretrained(out)
    tokenizer.save_pretrained(out)
    stamp_file.write_text(
        json_text({"stamp": stamp, "note": "random-init tiny model built by troupe for offline runs"})
    )
    return True
