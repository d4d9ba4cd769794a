"""Model work for `troupe evaluate`: test cases, loss on the reply tokens, batched generation.

The test split is rendered with the tokenizer saved by training (the same chat template and system
prompt). Generation is greedy by default, in left-padded batches; each reply is kept twice: clean
(special tokens removed) and raw (special tokens kept, cut at the first stop token), which is what
the chat-template leak check reads.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from troupe.chat import as_messages
from troupe.decoding import decode, utf8_guard
from troupe.errors import TroupeError
from troupe.files import read_jsonl
from troupe.schema import Evaluate


@dataclass(frozen=True)
class Case:
    prompt: list[dict] | str  # every turn before the last reply, or a completion's opening text
    reference: str
    meta: dict

    @property
    def context(self) -> str:
        """The user turn the reply answers (or the completion's opening)."""
        return self.prompt if isinstance(self.prompt, str) else self.prompt[-1]["content"]


@dataclass(frozen=True)
class Reply:
    text: str  # special tokens removed, stripped
    raw: str  # special tokens kept, up to the first stop token


def test_cases(path: Path, limit: int | None = None) -> list[Case]:
    if not path.is_file():
        raise TroupeError(f"{path} does not exist; build the dataset first (troupe convert)")
    cases = []
    for record in read_jsonl(path)[:limit]:
        meta = record.get("meta", {})
        if "text" in record:  # completion: the opening (e.g. a poem's title and author) is the prompt
            prompt = meta.get("prompt", "")
            cases.append(Case(prompt, record["text"][len(prompt) :], meta))
        else:
            messages = as_messages(record)
            cases.append(Case(messages[:-1], messages[-1]["content"], meta))
    return cases


def loader_kwargs(training: dict) -> dict:
    """How training loaded the base model, from the config Axolotl received (train.resolved.yaml), as
    Axolotl's ModelLoader maps it: dtype from bf16/fp16, the attention implementation, and 4-bit NF4
    (QLoRA) or 8-bit bitsandbytes quantisation — so base + adapter is scored as it was trained."""
    import torch

    half = torch.float16 if training.get("fp16") else torch.float32
    kwargs: dict = {"dtype": torch.bfloat16 if training.get("bf16") in (True, "auto") else half}
    if attention := training.get("attn_implementation"):
        kwargs["attn_implementation"] = {"fp8": "sdpa"}.get(attention, attention)
    if training.get("load_in_4bit"):
        kwargs["quantization_config"] = _bitsandbytes(
            load_in_4bit=True,
            llm_int8_threshold=6.0,
            llm_int8_has_fp16_weight=False,
            bnb_4bit_compute_dtype=kwargs["dtype"],
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_quant_storage=torch.bfloat16,
            **(training.get("bnb_config_kwargs") or {}),
        )
    elif training.get("load_in_8bit"):
        kwargs["quantization_config"] = _bitsandbytes(load_in_8bit=True)
    return kwargs


def _bitsandbytes(**settings):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**settings)


def load_model(model_dir: str, tokenizer_dir: Path, adapter_dir: Path | None = None, training: dict | None = None):
    """A model loaded as training loaded it (`training`: the resolved training config), with the
    trained adapter attached if given, and the tokenizer saved by training."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = loader_kwargs(training or {})
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if "quantization_config" in kwargs:
        model = AutoModelForCausalLM.from_pretrained(model_dir, device_map="auto", **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
        model = model.to("cuda" if torch.cuda.is_available() else "cpu")
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    return model.eval(), tokenizer


def prompt_text(tokenizer, case: Case) -> str:
    """What generation sees: the chat template with its generation prompt, or bos + the opening text."""
    if isinstance(case.prompt, str):
        return (tokenizer.bos_token or "") + case.prompt
    return tokenizer.apply_chat_template(case.prompt, tokenize=False, add_generation_prompt=True)


def prompt_and_reply_ids(tokenizer, case: Case) -> tuple[list[int], list[int]]:
    """Token ids of everything before the reply, and of the reply with its end-of-turn marker, cut
    from the full conversation as training renders it (some templates, e.g. Gemma 4's, render the
    generation prompt differently from a finished turn)."""

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    if isinstance(case.prompt, str):
        return ids(prompt_text(tokenizer, case)), ids(case.reference)
    conversation = [*case.prompt, {"role": "assistant", "content": case.reference}]
    full = tokenizer.apply_chat_template(conversation, tokenize=False)
    at = full.rfind(case.reference.strip())
    if at < 0:
        raise TroupeError("the chat template does not render the reference reply verbatim; cannot score it")
    return ids(full[:at]), ids(full[at:].rstrip())


def test_loss(model, tokenizer, cases: list[Case], batch_size: int) -> dict:
    """Mean cross-entropy over the reply tokens of every test case (prompt tokens masked). Rows are
    left-padded, so every reply ends the row: the vocabulary projection runs on the reply positions
    only (`logits_to_keep`), not on every prompt token (a 262k-token vocabulary makes that the
    largest tensor of the pass)."""
    import torch

    total_loss, total_tokens = 0.0, 0
    for start in tqdm(range(0, len(cases), batch_size), desc="test loss", leave=False):
        batch = [prompt_and_reply_ids(tokenizer, c) for c in cases[start : start + batch_size]]
        inputs, labels, mask = _left_padded(batch, tokenizer.pad_token_id, model.device)
        keep = max(len(reply) for _, reply in batch)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            out = model(input_ids=inputs, attention_mask=mask, position_ids=positions, logits_to_keep=keep + 1)
        logits, target = out.logits[:, -keep - 1 : -1].float(), labels[:, -keep:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        total_loss += nll.item()
        total_tokens += int((target != -100).sum())
    loss = total_loss / max(total_tokens, 1)
    return {"test_loss": loss, "test_perplexity": math.exp(min(loss, 50)), "test_tokens": total_tokens}


def _left_padded(batch, pad_id: int, device):
    """input ids, labels (the reply's tokens; -100 elsewhere) and attention mask, padded on the left."""
    import torch

    width = max(len(p) + len(r) for p, r in batch)
    inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (prompt, reply) in enumerate(batch):
        ids = prompt + reply
        inputs[row, width - len(ids) :] = torch.tensor(ids)
        labels[row, width - len(reply) :] = torch.tensor(reply)
        mask[row, width - len(ids) :] = 1
    return inputs.to(device), labels.to(device), mask.to(device)


def generate(model, tokenizer, prompts: list[str], settings: Evaluate, stop_ids: list[int], desc: str) -> list[Reply]:
    """Replies to rendered prompts, batched with left padding; greedy unless the recipe samples (seeded);
    only valid UTF-8 is generated and a reply ends on a whole character (troupe.decoding)."""
    import torch

    tokenizer.padding_side = "left"
    sampling = (
        dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p) if settings.do_sample else {}
    )
    torch.manual_seed(settings.seed)  # every system samples from the same random stream
    guard, replies = utf8_guard(tokenizer), []
    for start in tqdm(range(0, len(prompts), settings.batch_size), desc=desc):
        batch = tokenizer(
            prompts[start : start + settings.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=settings.repetition_penalty,
                logits_processor=guard,
                **sampling,
            )
        replies += [_reply(tokenizer, row.tolist(), stop_ids) for row in out[:, batch["input_ids"].shape[1] :]]
    return replies


def _reply(tokenizer, tokens: list[int], stop_ids: list[int]) -> Reply:
    end = next((i for i, token in enumerate(tokens) if token in stop_ids), len(tokens))
    kept = tokens[:end]
    return Reply(decode(tokenizer, kept).strip(), decode(tokenizer, kept, skip_special_tokens=False))


def stop_token_ids(model, tokenizer, eot_tokens: list[str]) -> list[int]:
    """eos, the model's own stop ids, and the recipe's end-of-turn tokens."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    ids.add(tokenizer.eos_token_id)
    ids.update(tokenizer.convert_tokens_to_ids(t) for t in eot_tokens)
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def last_logits(model, tokenizer, prompts: list[str], positions: int = 16):
    """Logits of the last `positions` tokens of each prompt (for comparing two models)."""
    import torch

    rows = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        with torch.no_grad():
            rows.append(model(**ids).logits[0, -positions:].float().cpu())
    return rows
