"""`troupe evaluate`: test loss/perplexity on the character's turns, and test-set generations.

    troupe evaluate demo   # → outputs/demo/eval/{metrics.json,generations.csv}

The test split is rendered with the tokenizer saved by training (the same chat template and system
prompt), generated greedily by default in left-padded batches. Base and base+adapter are the same
loaded model with the adapter switched off and on.
"""

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from troupe.dataset import is_punctuation_only
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, json_text, read_jsonl
from troupe.schema import Evaluate

SHORT_REPLY_CHARS = 4
ROLE_BY_SHAREGPT = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class TestCase:
    prompt: list[dict] | str  # every turn before the last reply, or a completion's opening text
    reference: str
    meta: dict


def as_messages(record: dict) -> list[dict]:
    """A dataset record in either output format as [{role, content}]."""
    if "messages" in record:
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    return [{"role": ROLE_BY_SHAREGPT[t["from"]], "content": t["value"]} for t in record["conversations"]]


def test_cases(path: Path, limit: int | None) -> list[TestCase]:
    if not path.is_file():
        raise TroupeError(f"{path} does not exist; build the dataset first (troupe convert)")
    cases = []
    for record in read_jsonl(path)[:limit]:
        meta = record.get("meta", {})
        if "text" in record:  # completion: the opening (e.g. a poem's title and author) is the prompt
            prompt = meta.get("prompt", "")
            cases.append(TestCase(prompt, record["text"][len(prompt) :], meta))
        else:
            messages = as_messages(record)
            cases.append(TestCase(messages[:-1], messages[-1]["content"], meta))
    return cases


def prompt_text(tokenizer, case: TestCase) -> str:
    """What generation sees: the chat template with its generation prompt, or bos + the opening text."""
    if isinstance(case.prompt, str):
        return (tokenizer.bos_token or "") + case.prompt
    return tokenizer.apply_chat_template(case.prompt, tokenize=False, add_generation_prompt=True)


# ---- reply statistics (pure) ---------------------------------------------------------------------


def reply_stats(replies: list[str], references: list[str]) -> dict:
    """The seed's hand-counted symptoms, counted: empty, punctuation-only and very short replies,
    mean length against the references, and the most repeated replies."""
    n = max(len(replies), 1)
    mean = sum(map(len, replies)) / n
    ref_mean = sum(map(len, references)) / max(len(references), 1)
    return {
        "replies": len(replies),
        "empty_rate": sum(not r for r in replies) / n,
        "punctuation_only_rate": sum(is_punctuation_only(r) for r in replies) / n,
        "short_rate": sum(len(r) <= SHORT_REPLY_CHARS for r in replies) / n,
        "mean_chars": mean,
        "reference_mean_chars": ref_mean,
        "length_ratio": mean / ref_mean if ref_mean else None,
        "top_repeated": [[reply, count] for reply, count in Counter(replies).most_common(10) if count > 1],
    }


# ---- model work --------------------------------------------------------------------------------


def load_model(base_model: str, adapter_dir: Path):
    """Base model with the trained adapter attached, and the tokenizer saved by training."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype).to(device)
    model = PeftModel.from_pretrained(model, adapter_dir).eval()
    return model, tokenizer


def prompt_and_reply_ids(tokenizer, case: TestCase) -> tuple[list[int], list[int]]:
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


def test_loss(model, tokenizer, cases: list[TestCase], batch_size: int) -> dict:
    """Mean cross-entropy over the reply tokens of every test case (prompt tokens masked)."""
    import torch

    total_loss, total_tokens = 0.0, 0
    for start in tqdm(range(0, len(cases), batch_size), desc="test loss", leave=False):
        batch = [prompt_and_reply_ids(tokenizer, c) for c in cases[start : start + batch_size]]
        inputs, labels, mask = _padded(batch, tokenizer.pad_token_id, model.device)
        with torch.no_grad():
            logits = model(input_ids=inputs, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        total_loss += nll.item()
        total_tokens += int((target != -100).sum())
    loss = total_loss / max(total_tokens, 1)
    return {"test_loss": loss, "test_perplexity": math.exp(min(loss, 50)), "test_tokens": total_tokens}


def _padded(batch, pad_id: int, device):
    import torch

    width = max(len(p) + len(r) for p, r in batch)
    inputs = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (prompt, reply) in enumerate(batch):
        ids = prompt + reply
        inputs[row, : len(ids)] = torch.tensor(ids)
        labels[row, len(prompt) : len(ids)] = torch.tensor(reply)
        mask[row, : len(ids)] = 1
    return inputs.to(device), labels.to(device), mask.to(device)


def generate(model, tokenizer, cases: list[TestCase], settings: Evaluate, stop_ids: list[int], desc: str) -> list[str]:
    """Replies for every case, batched with left padding; greedy unless the recipe samples."""
    import torch

    tokenizer.padding_side = "left"
    sampling = (
        dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p) if settings.do_sample else {}
    )
    replies = []
    for start in tqdm(range(0, len(cases), settings.batch_size), desc=desc):
        prompts = [prompt_text(tokenizer, c) for c in cases[start : start + settings.batch_size]]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=settings.max_new_tokens,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=settings.repetition_penalty,
                **sampling,
            )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        replies += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return replies


def stop_token_ids(model, tokenizer, eot_tokens: list[str]) -> list[int]:
    """eos, the model's own stop ids, and the recipe's end-of-turn tokens."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    ids.add(tokenizer.eos_token_id)
    ids.update(tokenizer.convert_tokens_to_ids(t) for t in eot_tokens)
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


# ---- the command -------------------------------------------------------------------------------


def evaluate(config: dict, settings: Evaluate, dataset_dir: Path, output_dir: Path, root: Path) -> dict:
    """Write eval/metrics.json and eval/generations.csv for base and base+adapter; returns the metrics."""
    if not (output_dir / "adapter_config.json").is_file():
        raise TroupeError(f"no trained adapter in {output_dir}; train first")
    base = str(root / config["base_model"]) if (root / config["base_model"]).is_dir() else config["base_model"]
    cases = test_cases(dataset_dir / "test.jsonl", settings.limit)
    model, tokenizer = load_model(base, output_dir)
    stops = stop_token_ids(model, tokenizer, config.get("eot_tokens") or [])
    references = [c.reference for c in cases]
    systems, replies = {}, {}
    for name in ("base", "adapter"):
        with _adapter(model, enabled=name == "adapter"):
            systems[name] = test_loss(model, tokenizer, cases, settings.batch_size)
            replies[name] = generate(model, tokenizer, cases, settings, stops, desc=f"generate ({name})")
        systems[name].update(reply_stats(replies[name], references))
    metrics = {"test_samples": len(cases), "settings": settings.model_dump(mode="json"), "systems": systems}
    out = output_dir / "eval"
    atomic_write_text(out / "metrics.json", json_text(metrics))
    atomic_write_text(out / "generations.csv", generations_csv(cases, replies))
    return metrics


def _adapter(model, enabled: bool):
    import contextlib

    return contextlib.nullcontext() if enabled else model.disable_adapter()


def generations_csv(cases: list[TestCase], replies: dict[str, list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["story", "index", "context", "reference", *replies])
    for i, case in enumerate(cases):
        context = case.prompt if isinstance(case.prompt, str) else case.prompt[-1]["content"]
        writer.writerow(
            [
                case.meta.get("story", ""),
                case.meta.get("index", ""),
                context,
                case.reference,
                *[replies[name][i] for name in replies],
            ]
        )
    return buffer.getvalue()


def summary_table(metrics: dict) -> str:
    """A plain table of the headline numbers per system."""
    rows = [
        ("test loss", "test_loss", "{:.3f}"),
        ("perplexity", "test_perplexity", "{:.1f}"),
        ("mean chars", "mean_chars", "{:.1f}"),
        ("length ratio", "length_ratio", "{:.2f}"),
        ("empty", "empty_rate", "{:.0%}"),
        ("punctuation only", "punctuation_only_rate", "{:.0%}"),
        (f"≤{SHORT_REPLY_CHARS} chars", "short_rate", "{:.0%}"),
    ]
    names = list(metrics["systems"])
    lines = [f"{'':18}" + "".join(f"{n:>12}" for n in names)]
    for label, key, fmt in rows:
        values = [metrics["systems"][n].get(key) for n in names]
        lines.append(f"{label:18}" + "".join(f"{(fmt.format(v) if v is not None else '-'):>12}" for v in values))
    return "\n".join(lines)
