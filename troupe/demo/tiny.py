"""Tiny models built locally, so the whole pipeline runs offline on a CPU in seconds.

    troupe tiny-model                       # models/tiny for the demo recipe: trained on its story
    troupe tiny-model --untrained           # random weights (tests of the pipeline's plumbing)
    troupe tiny-model --arch gemma4 --out models/gemma4-tiny   # a real Gemma 4 (text+vision+audio)

A byte-level BPE tokenizer is trained on the text, and a model is saved beside it:
- `llama` (the demo's): a small Llama-architecture decoder with a Gemma-style chat template
  (`<|turn>role … <turn|>`, where the end-of-turn token is not eos, as in real Gemma). Given
  conversations, every weight is trained on them with transformers' Trainer (`pretrain`), so the
  base already speaks the story's language before a LoRA learns one character's voice.
- `gemma4`: Gemma4ForConditionalGeneration from transformers' own config classes, with small
  text, vision and audio towers and Axolotl's copy of the real Gemma 4 chat template, to check
  what a Gemma 4 recipe does to the real architecture (LoRA targets, trained tokens); random.
Same text → same files (seeded; on one machine).
"""

import json
from pathlib import Path

from troupe import provenance
from troupe.chat import as_messages
from troupe.files import read_jsonl, sha256_bytes
from troupe.layout import SPLITS, Layout

BASE_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<|turn>", "<turn|>"]
GEMMA4_TOKENS = [
    "<|channel>",
    "<channel|>",
    '<|"|>',
    "<|think|>",
    "<|tool>",
    "<tool|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool_response>",
    "<tool_response|>",
    "<|image>",
    "<image|>",
    "<|image|>",
    "<|audio>",
    "<audio|>",
    "<|audio|>",
    "<|video|>",
]
END_OF_TURN = "<turn|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<|turn>{{ role }}\n{{ message['content'] | trim }}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
VOCAB_SIZE = 2048
LLAMA_SHAPE = dict(  # random weights: the smallest decoder that exercises the pipeline (tests, benches)
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)
# The trained demo base: size and training chosen by measurement (recipes/demo.yaml's header has the
# arithmetic): the lowest loss on the character's validation replies within about 30 s on 2 CPU cores.
BASE_SHAPE = {**LLAMA_SHAPE, "hidden_size": 128, "intermediate_size": 256}
PRETRAINING = dict(
    max_steps=200,
    per_device_train_batch_size=16,
    learning_rate=2.5e-3,
    lr_scheduler_type="cosine",
    warmup_steps=0.05,
    train_sampling_strategy="group_by_length",  # batches of similar lengths: 40% less padding, faster steps
    seed=0,
    logging_steps=10,
)
GEMMA4_TINY = {
    "text": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        global_head_dim=32,
        hidden_size_per_layer_input=16,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=2048,
    ),
    "vision": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        patch_size=4,
        position_embedding_size=64,
    ),
    "audio": dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        output_proj_dims=32,
        subsampling_conv_channels=[8, 4],
        attention_chunk_size=4,
        attention_context_left=5,
    ),
}
ARCHS = ("llama", "gemma4")


def dataset_texts(layout: Layout) -> list[str]:
    """Every message of every split, in file order (the tokenizer's training text)."""
    texts = []
    for split in SPLITS:
        for record in read_jsonl(layout.split(split)):
            texts += [m["content"] for m in ([] if "text" in record else as_messages(record))]
    return texts


def wrap_tokenizer(core, special: list[str], chat_template: str):
    """A `tokenizers` tokenizer as a transformers one with the special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    named = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
    others = [token for token in special if token not in named.values()]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, additional_special_tokens=others, **named)
    tokenizer.chat_template = chat_template
    return tokenizer


def train_tokenizer(
    texts: list[str], vocab_size: int, extra_tokens: list[str] = (), chat_template: str = CHAT_TEMPLATE
):
    """A byte-level BPE (any text encodes, nothing is unknown) wrapped as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    special = [*BASE_TOKENS, *extra_tokens]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=special,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return wrap_tokenizer(bpe, special, chat_template)


def _token_ids(tokenizer) -> dict:
    return dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )


def _stop_ids(tokenizer) -> list[int]:
    return [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(END_OF_TURN)]


def llama_model(tokenizer, shape: dict = LLAMA_SHAPE):
    """A small Llama-architecture decoder sized to the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, **shape, **_token_ids(tokenizer))
    )


def gemma4_model(tokenizer, shape: dict = GEMMA4_TINY):
    """Gemma4ForConditionalGeneration with the text, vision and audio tower sizes of `shape`
    (troupe's tiny one by default; bench/train_speed.py passes the published E4B sizes)."""
    from transformers import (
        Gemma4AudioConfig,
        Gemma4Config,
        Gemma4ForConditionalGeneration,
        Gemma4TextConfig,
        Gemma4VisionConfig,
    )

    ids = tokenizer.convert_tokens_to_ids
    text = Gemma4TextConfig(
        **{
            "vocab_size": len(tokenizer),
            "vocab_size_per_layer_input": len(tokenizer),
            **shape["text"],
            **_token_ids(tokenizer),
            "eos_token_id": _stop_ids(tokenizer),
        }
    )
    config = Gemma4Config(
        text_config=text,
        vision_config=Gemma4VisionConfig(**shape["vision"]),
        audio_config=Gemma4AudioConfig(**shape["audio"]),
        boi_token_id=ids("<|image>"),
        eoi_token_id=ids("<image|>"),
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        boa_token_id=ids("<|audio>"),
        eoa_token_index=ids("<audio|>"),
        audio_token_id=ids("<|audio|>"),
    )
    return Gemma4ForConditionalGeneration(config)


def pretrain(model, tokenizer, conversations: list[list[dict]], training: dict = PRETRAINING) -> list[dict]:
    """Train every weight on the conversations as the chat template renders them: every token of the
    story (context lines and reply) counts, as a base model learns whole text; the system prompt,
    the same in every conversation, does not. Returns the Trainer's log."""
    import tempfile

    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    rows = [_story_tokens(tokenizer, c) for c in conversations]
    with tempfile.TemporaryDirectory() as scratch:  # nothing is saved there: the model is saved by the caller
        args = TrainingArguments(
            output_dir=scratch,
            save_strategy="no",
            report_to="none",
            dataloader_pin_memory=torch.cuda.is_available(),
            **training,
        )
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True)  # pads labels with -100
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
        trainer.train()
    return trainer.state.log_history


def _story_tokens(tokenizer, conversation: list[dict]) -> dict:
    ids = tokenizer.apply_chat_template(conversation, tokenize=True)["input_ids"]
    system = [m for m in conversation if m["role"] == "system"]
    masked = len(tokenizer.apply_chat_template(system, tokenize=True)["input_ids"]) if system else 0
    return {"input_ids": ids, "labels": [-100] * masked + ids[masked:]}


def build_tiny_model(
    out: Path, texts: list[str], arch: str = "llama", conversations: list[list[dict]] = (), seed: int = 0
) -> bool:
    """Write tokenizer + model to `out`, the model trained on `conversations` if any (llama only), else
    random; returns False (doing nothing) if the same inputs built it already."""
    import torch
    from transformers import GenerationConfig

    shape = BASE_SHAPE if conversations else LLAMA_SHAPE
    settings = [arch, VOCAB_SIZE, seed, shape, CHAT_TEMPLATE, PRETRAINING if conversations else None]
    stamp = sha256_bytes(json.dumps([texts, conversations, settings], ensure_ascii=False).encode())
    if (provenance.read_record(out, "tiny-model") or {}).get("stamp") == stamp:
        return False
    if arch == "gemma4":
        from axolotl.utils.chat_templates import get_chat_template

        tokenizer = train_tokenizer(texts, VOCAB_SIZE, GEMMA4_TOKENS, get_chat_template("gemma4"))
    else:
        tokenizer = train_tokenizer(texts, VOCAB_SIZE)
    torch.manual_seed(seed)
    model = gemma4_model(tokenizer) if arch == "gemma4" else llama_model(tokenizer, shape)
    log = pretrain(model, tokenizer, list(conversations)) if conversations else []
    model.generation_config = GenerationConfig(**{**_token_ids(tokenizer), "eos_token_id": _stop_ids(tokenizer)})
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    made = {"stamp": stamp, "arch": arch, **_record(model, conversations, log)}
    provenance.write_record(out, provenance.record("tiny-model", made))
    return True


def _record(model, conversations, log: list[dict]) -> dict:
    """What the model is, for its record (troupe.json)."""
    losses = [round(float(e["loss"]), 4) for e in log if "loss" in e]
    trained = {"conversations": len(conversations), "steps": PRETRAINING["max_steps"], "loss": losses}
    return {"parameters": model.num_parameters(), "trained": trained if conversations else None}
