"""`troupe export`: the character for llama.cpp, LM Studio and Ollama, as GGUF files written by
llama.cpp's own converters (troupe.llama_cpp) and loaded back in llama.cpp itself to check them.

    troupe export kaltsit     # make export CHARACTER=kaltsit → outputs/kaltsit/export/

outputs/<slug>/export/, built aside and renamed in whole, from the merged model, which must be the
one made from the current adapter (make merge):
    <slug>-f16.gguf        the merged model in 16 bits, with the trained chat template and stop token
    <slug>-q8_0.gguf       the same in llama.cpp's 8-bit Q8_0
    <slug>-lora-f16.gguf   the adapter alone, for llama.cpp's `--lora` on base-f16.gguf
    base-f16.gguf          the base model the adapter was trained on
    Modelfile              `ollama create <slug> -f Modelfile`: the q8_0 file, the chat template as
                           Ollama's TEMPLATE, a stop PARAMETER per stop token, the recipe's SYSTEM
    troupe.json            what it was made from (the adapter's and the merged model's sha256), each
                           file's size, sha256 and conversion time, and llama.cpp's check on a few
                           test prompts (`agreement`)
"""

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from troupe import provenance
from troupe.chat import conversation
from troupe.engine import StepFailed
from troupe.errors import TroupeError
from troupe.evaluation.generation import Case, test_cases
from troupe.files import atomic_write_text, new_dir_beside, replace_dir, sha256_file
from troupe.layout import ExportFiles, base_model_location
from troupe.llama_cpp import command, load
from troupe.recipe import Recipe
from troupe.render import run_env

CHECKED_PROMPTS = 8  # `make export` checks this many test prompts in llama.cpp (bench/export.py: 50 or more)
GREEDY_TOKENS = 32
SENTINEL = {"system": "\x00SYSTEM\x00", "user": "\x00PROMPT\x00", "assistant": "\x00RESPONSE\x00"}
OLLAMA = {"system": "{{ .System }}", "user": "{{ .Prompt }}", "assistant": "{{ .Response }}"}


def export(recipe: Recipe) -> Path:
    """outputs/<slug>/export/ from the current merged model and adapter; returns the folder."""
    layout = recipe.layout
    adapter = provenance.adapter_record(layout)
    if not provenance.merged_is_current(layout, adapter):
        state = "is from an older adapter" if layout.merged_dir.is_dir() else "does not exist"
        raise TroupeError(f"{layout.rel(layout.merged_dir)} {state}; run first: make merge CHARACTER={recipe.slug}")
    config = provenance.training_config(layout)
    work = new_dir_beside(layout.export_dir)
    try:
        files = layout.export_files(work)
        seconds = convert_all(recipe, config, files)
        atomic_write_text(files.modelfile, modelfile(recipe, config, files))
        checked = agreement(recipe, config, files, CHECKED_PROMPTS)
        provenance.write_record(work, _record(layout, adapter, files, seconds, checked))
        replace_dir(work, layout.export_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # what is left of a failed export
    print(summary(layout.rel(layout.export_dir), provenance.read_record(layout.export_dir, "export")))
    return layout.export_dir


def convert_all(recipe: Recipe, config: dict, files: ExportFiles) -> dict[str, float]:
    """The four GGUF files, each by llama.cpp's converter; returns the seconds each took."""
    layout, root = recipe.layout, recipe.root
    merged, base = str(layout.merged_dir), str(base_folder(config["base_model"], root))
    steps = [
        (files.f16, ["convert_hf_to_gguf.py", merged, "--outtype", "f16"]),
        (files.q8_0, ["convert_hf_to_gguf.py", merged, "--outtype", "q8_0"]),
        (files.base, ["convert_hf_to_gguf.py", base, "--outtype", "f16"]),
        (files.lora, ["convert_lora_to_gguf.py", str(layout.adapter_dir), "--base", base, "--outtype", "f16"]),
    ]
    env, seconds = run_env(config, root), {}
    for path, (script, *args) in steps:
        started = time.perf_counter()
        print(f"$ {script} {' '.join(args)} --outfile {layout.rel(path.parent.parent / 'export' / path.name)}")
        done = subprocess.run(
            command(script, *args, "--outfile", str(path)), cwd=root, env=env, capture_output=True, text=True
        )
        if done.returncode:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
            raise StepFailed(f"llama.cpp's {script} failed (exit {done.returncode}) writing {path.name}:\n{tail}", 1)
        seconds[path.name] = round(time.perf_counter() - started, 1)
    return seconds


def base_folder(base_model: str, root: Path) -> Path:
    """The base model's files: its folder in the project, or its copy in the hub cache (downloaded
    when it is not there yet, unless HF_HUB_OFFLINE=1)."""
    location = base_model_location(base_model, root)
    if location.is_local:
        return location.folder
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(base_model))


# ---- Ollama ---------------------------------------------------------------------------------------


def modelfile(recipe: Recipe, config: dict, files: ExportFiles) -> str:
    """An Ollama Modelfile for the q8_0 file: the training chat template as Ollama's TEMPLATE, one
    stop PARAMETER per stop token, the recipe's system prompt."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(recipe.layout.merged_dir)
    system = recipe.spec.prompt.system
    lines = [f"# {recipe.slug}: made by `troupe export` from {recipe.layout.rel(recipe.layout.merged_dir)}"]
    lines += [
        f"FROM ./{files.q8_0.name}",
        f'TEMPLATE """{ollama_template(tokenizer, bool(system), adds_bos(files.q8_0))}"""',
    ]
    lines += [f'PARAMETER stop "{token}"' for token in stop_texts(tokenizer, config)]
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def ollama_template(tokenizer, with_system: bool, bos_added: bool) -> str:
    """The chat template rendered once with a placeholder in each turn, the placeholders then
    replaced by Ollama's {{ .System }}, {{ .Prompt }} and {{ .Response }}: the prompt as the template
    renders it for generation, then the reply and what the template writes after a finished reply."""
    turns = conversation(SENTINEL["system"] if with_system else "", [{"role": "user", "content": SENTINEL["user"]}])
    prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    finished = tokenizer.apply_chat_template(
        [*turns, {"role": "assistant", "content": SENTINEL["assistant"]}], tokenize=False
    )
    after_reply = finished[finished.index(SENTINEL["assistant"]) + len(SENTINEL["assistant"]) :]
    text = prompt + SENTINEL["assistant"] + after_reply
    if bos_added and tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token) :]  # llama.cpp adds it itself (the GGUF says so)
    for role, placeholder in SENTINEL.items():
        text = text.replace(placeholder, OLLAMA[role])
    return text


def stop_texts(tokenizer, config: dict) -> list[str]:
    """eos and the recipe's end-of-turn tokens, as text."""
    return list(dict.fromkeys([*(config.get("eot_tokens") or []), tokenizer.eos_token]))


def adds_bos(gguf: Path) -> bool:
    """Whether llama.cpp adds bos to a prompt for this file (its metadata's add_bos_token)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).fields.get("tokenizer.ggml.add_bos_token")
    return bool(field.contents()) if field else False


# ---- the check in llama.cpp -------------------------------------------------------------------------


def agreement(recipe: Recipe, config: dict, files: ExportFiles, prompts: int) -> dict:
    """llama.cpp (llama-cpp-python) against transformers on the merged model, on the first `prompts`
    test prompts: for the f16 and q8_0 files and for base-f16 with the LoRA file, the share of
    prompts whose tokens from the GGUF's own chat template equal transformers' apply_chat_template,
    teacher-forced top-1 next-token agreement on the reference replies, and the share of greedy
    GREEDY_TOKENS-token replies that are identical."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cases = [c for c in test_cases(recipe.layout.split("test"), prompts) if isinstance(c.prompt, list)]
    tokenizer = AutoTokenizer.from_pretrained(recipe.layout.merged_dir)
    model = AutoModelForCausalLM.from_pretrained(recipe.layout.merged_dir).eval()
    stops = {tokenizer.convert_tokens_to_ids(t) for t in stop_texts(tokenizer, config)}
    reference = [_transformers_run(model, tokenizer, case, stops) for case in cases]
    return {
        name: _llama_cpp_run(gguf, lora, reference)
        for name, gguf, lora in (
            ("f16", files.f16, None),
            ("q8_0", files.q8_0, None),
            ("base-f16 + lora", files.base, files.lora),
        )
    } | {"prompts": len(cases)}


@dataclass(frozen=True)
class Reference:
    """What transformers does with one test conversation."""

    messages: list[dict]  # the prompt's turns
    prompt: list[int]  # apply_chat_template with the generation prompt
    conversation: list[int]  # prompt and reference reply as training renders them
    top1: list[int]  # transformers' next-token argmax at each reply position
    greedy: list[int]  # its greedy reply, up to GREEDY_TOKENS tokens or a stop token


def _transformers_run(model, tokenizer, case: Case, stops: set[int]) -> Reference:
    import torch

    prompt = tokenizer.apply_chat_template(case.prompt, add_generation_prompt=True)["input_ids"]
    conversation = tokenizer.apply_chat_template([*case.prompt, {"role": "assistant", "content": case.reference}])[
        "input_ids"
    ]
    with torch.no_grad():
        logits = model(torch.tensor([conversation])).logits[0]
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=sorted(stops)
        )[0, len(prompt) :].tolist()
    greedy = out[: next((i + 1 for i, t in enumerate(out) if t in stops), len(out))]
    top1 = logits.argmax(-1).tolist()[len(prompt) - 1 : len(conversation) - 1]
    return Reference(case.prompt, prompt, conversation, top1, greedy)


def _llama_cpp_run(gguf: Path, lora: Path | None, reference: list[Reference]) -> dict:
    import numpy as np
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = load(gguf, lora, context=max(len(r.conversation) for r in reference) + GREEDY_TOKENS + 8)
    try:
        text = llm._model.token_get_text
        formatter = Jinja2ChatFormatter(
            llm.metadata["tokenizer.chat_template"], text(llm.token_eos()), text(llm.token_bos())
        )
        same_prompt = agree = compared = same_greedy = 0
        for ref in reference:
            rendered = formatter(messages=ref.messages)
            tokens = llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
            same_prompt += tokens == ref.prompt
            llm.reset()
            llm.eval(ref.conversation)
            top1 = np.asarray(llm.scores[: len(ref.conversation)]).argmax(-1)[len(ref.prompt) - 1 : -1].tolist()
            agree += sum(a == b for a, b in zip(top1, ref.top1, strict=True))
            compared += len(ref.top1)
            same_greedy += _greedy(llm, ref.prompt) == ref.greedy
    finally:
        llm.close()
    n = len(reference)
    return {"same_prompt_tokens": same_prompt / n, "top1_agreement": agree / compared, "same_greedy": same_greedy / n}


def _greedy(llm, prompt: list[int]) -> list[int]:
    import llama_cpp

    llm.reset()
    out = []
    for token in llm.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0):
        out.append(token)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or len(out) >= GREEDY_TOKENS:
            break
    return out


# ---- the record and the summary ------------------------------------------------------------------


def _record(layout, adapter: dict, files: ExportFiles, seconds: dict, checked: dict) -> dict:
    gguf = [files.f16, files.q8_0, files.lora, files.base]
    fields = {
        "adapter_sha256": adapter["adapter_sha256"],
        "merged_sha256": provenance.weights_sha256(layout.merged_dir),
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p), "seconds": seconds[p.name]} for p in gguf
        },
        "llama_cpp_check": checked,
    }
    return provenance.record("export", fields)


def summary(folder: str, record: dict) -> str:
    sizes = ", ".join(f"{name} {entry['bytes'] / 2**20:.1f} MiB" for name, entry in record["files"].items())
    checked = record["llama_cpp_check"]
    lines = [f"exported {folder}: {sizes}, Modelfile"]
    lines += [
        f"  llama.cpp on {checked['prompts']} test prompts, {name}: prompt tokens equal {v['same_prompt_tokens']:.0%}, "
        f"top-1 agreement {v['top1_agreement']:.1%}, greedy replies identical {v['same_greedy']:.0%}"
        for name, v in checked.items()
        if isinstance(v, dict)
    ]
    return "\n".join(lines)
