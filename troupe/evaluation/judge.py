"""An optional LLM judge on any OpenAI-compatible chat endpoint, off unless configured:

    TROUPE_JUDGE_URL=https://openrouter.ai/api/v1 TROUPE_JUDGE_MODEL=google/gemma-2-9b-it \\
    TROUPE_JUDGE_KEY=… make evaluate CHARACTER=yoda

Three tasks on the first `judge_items` test items, each judged `judge_repeats` times at temperature 0:
- rubric (seed 003): voice, staying in character, coherence, engagement, length, 1–5;
- style (seed 002): 0–10 → 0–1, with the base model's replies as the negative control and the
  references as the positive control;
- pairwise: base vs adapter, blind, asked in both orders.
The number of requests is printed first; every raw judge reply is saved (eval/judge_raw.jsonl); a
request that fails after retries, or a reply that is not the asked-for JSON, is recorded as a
failure, never as a score. The key is read from the environment and written nowhere: a judge that
echoes the request has it redacted from its records (troupe.redact).
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from troupe.download import Requester, RetryPolicy
from troupe.errors import TroupeError
from troupe.files import atomic_write_text, jsonl_text
from troupe.redact import redact, redacted

RUBRIC = ("voice", "in_character", "coherence", "engagement", "length")
JSON_OBJECT = re.compile(r"\{.*\}", re.S)


@dataclass(frozen=True)
class Judge:
    url: str
    model: str
    key: str | None
    temperature: float = 0.0

    @classmethod
    def from_env(cls) -> "Judge | None":
        url = os.environ.get("TROUPE_JUDGE_URL")
        if not url:
            return None
        key = os.environ.get("TROUPE_JUDGE_KEY")
        if key is not None and (not key or any(not ch.isprintable() or ch.isspace() for ch in key)):
            raise TroupeError(
                "TROUPE_JUDGE_KEY is empty or holds a space or control character (a trailing newline or "
                "carriage return from a file?); set it again without it"
            )
        return cls(url.rstrip("/"), os.environ.get("TROUPE_JUDGE_MODEL", "judge"), key)

    def ask(self, requester: Requester, prompt: str) -> str:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        body = {"model": self.model, "temperature": self.temperature, "messages": [{"role": "user", "content": prompt}]}
        reply, _ = requester.call("POST", f"{self.url}/chat/completions", json.loads, json=body, headers=headers)
        return reply["choices"][0]["message"]["content"]


@dataclass(frozen=True)
class Task:
    kind: str  # rubric | style | pairwise
    item: int
    system: str  # the system judged (pairwise: the order, "base|adapter" or "adapter|base")
    repeat: int
    prompt: str


def rubric_prompt(character: str, brief: str, context: str, reply: str) -> str:
    return (
        f"You judge a role-play reply by the character {character}.\nCharacter brief: {brief or '(none)'}\n"
        f"Conversation so far:\n{context}\n\nReply to judge:\n{reply}\n\n"
        "Score it from 1 (poor) to 5 (excellent) on: voice (sounds like the character), in_character (never "
        "breaks character or mentions being an AI), coherence, engagement, length (appropriate for a chat "
        'turn). Answer with JSON only: {"voice": n, "in_character": n, "coherence": n, "engagement": n, '
        '"length": n}'
    )


def style_prompt(character: str, examples: list[str], text: str) -> str:
    shown = "\n".join(f"- {e}" for e in examples)
    return (
        f"Style to recognise: the way {character} speaks. Real examples:\n{shown}\n\nText to judge:\n{text}\n\n"
        'How well does the text match that style, from 0 (not at all) to 10 (perfectly)? JSON only: {"score": n}'
    )


def pairwise_prompt(character: str, context: str, first: str, second: str) -> str:
    return (
        f"Which reply sounds more like {character} answering this conversation?\n{context}\n\n"
        f"Reply A:\n{first}\n\nReply B:\n{second}\n\n"
        'Answer with JSON only: {"winner": "A"} or {"winner": "B"} or {"winner": "tie"}'
    )


def parse(kind: str, text: str) -> dict:
    """The judge's JSON for one task, checked; ValueError when it is not what was asked for."""
    match = JSON_OBJECT.search(text or "")
    if not match:
        raise ValueError("no JSON object in the reply")
    data = json.loads(match.group(0))
    if kind == "rubric":
        if not all(isinstance(data.get(k), int | float) and 1 <= data[k] <= 5 for k in RUBRIC):
            raise ValueError(f"rubric scores must be 1–5 for {', '.join(RUBRIC)}")
        return {k: float(data[k]) for k in RUBRIC}
    if kind == "style":
        if not (isinstance(data.get("score"), int | float) and 0 <= data["score"] <= 10):
            raise ValueError("style score must be 0–10")
        return {"score": float(data["score"]) / 10}
    if data.get("winner") not in ("A", "B", "tie"):
        raise ValueError('winner must be "A", "B" or "tie"')
    return {"winner": data["winner"]}


def tasks_for(recipe, cases, runs: dict, examples: list[str]) -> list[Task]:
    settings, character = recipe.spec.evaluate, recipe.spec.character.name
    brief, repeats = recipe.spec.prompt.system, range(settings.judge_repeats)
    tasks = []
    for i, case in enumerate(cases[: settings.judge_items]):
        replies = {name: run.replies[i].text for name, run in runs.items()} | {"references": case.reference}
        for name, reply in replies.items():
            tasks += [Task("style", i, name, r, style_prompt(character, examples, reply)) for r in repeats]
            if name != "references":
                tasks += [
                    Task("rubric", i, name, r, rubric_prompt(character, brief, case.context, reply)) for r in repeats
                ]
        for order in (("base", "adapter"), ("adapter", "base")):
            prompt = pairwise_prompt(character, case.context, replies[order[0]], replies[order[1]])
            tasks += [Task("pairwise", i, "|".join(order), r, prompt) for r in repeats]
    return tasks


def run(recipe, cases, runs: dict, out_dir: Path) -> dict | None:
    """Judge the runs if TROUPE_JUDGE_URL is set; None otherwise."""
    judge = Judge.from_env()
    if judge is None:
        return None
    examples = [c.reference for c in cases[recipe.spec.evaluate.judge_items :]][:5] or [c.reference for c in cases[:3]]
    tasks = tasks_for(recipe, cases, runs, examples)
    print(redact(f"LLM judge: {len(tasks)} requests to {judge.model} at {judge.url}"))
    requester = Requester(RetryPolicy(attempts=4, backoff=1.0, timeout=(10.0, 120.0)))
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda task: _judge_one(judge, requester, task), tasks))
    atomic_write_text(out_dir / "judge_raw.jsonl", jsonl_text(redacted(outcomes)))
    return aggregate(outcomes, judge)


def _judge_one(judge: Judge, requester: Requester, task: Task) -> dict:
    record = {"kind": task.kind, "item": task.item, "system": task.system, "repeat": task.repeat}
    try:
        reply = judge.ask(requester, task.prompt)
    except Exception as exc:  # noqa: BLE001 — any failure is recorded as one, never as a score
        return {**record, "error": f"{type(exc).__name__}: {exc}"}
    try:
        return {**record, "raw": reply, "result": parse(task.kind, reply)}
    except (ValueError, json.JSONDecodeError) as exc:
        return {**record, "raw": reply, "error": f"unusable reply: {exc}"}


def aggregate(outcomes: list[dict], judge: Judge) -> dict:
    """Means per system (item scores averaged over repeats first), the pairwise tally, and failures."""
    done = [o for o in outcomes if "result" in o]
    rubric, style = {}, {}
    for system in sorted({o["system"] for o in done if o["kind"] == "rubric"}):
        rubric[system] = {k: _item_mean(done, "rubric", system, k) for k in RUBRIC}
    for system in sorted({o["system"] for o in done if o["kind"] == "style"}):
        style[system] = _item_mean(done, "style", system, "score")
    tally = {"adapter": 0, "base": 0, "tie": 0}
    for o in (o for o in done if o["kind"] == "pairwise"):
        first, second = o["system"].split("|")
        tally[{"A": first, "B": second, "tie": "tie"}[o["result"]["winner"]]] += 1
    return {
        "model": judge.model,
        "requests": len(outcomes),
        "failed": len(outcomes) - len(done),
        "rubric_1_to_5": rubric,
        "style_0_to_1": style,
        "pairwise": tally,
        "controls": "style: base = negative control, references = positive control",
    }


def _item_mean(done: list[dict], kind: str, system: str, key: str) -> float:
    items: dict[int, list[float]] = {}
    for o in done:
        if o["kind"] == kind and o["system"] == system:
            items.setdefault(o["item"], []).append(o["result"][key])
    return mean(mean(values) for values in items.values())
