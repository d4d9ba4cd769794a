"""Generation benchmark: the evaluation's batched, left-padded generation against one prompt at a
time, on kaltsit-shaped prompts (the seed's system prompt, 3 context lines, 335 test prompts) and
the tiny local model, greedy, same number of new tokens.

    .venv/bin/python bench/generate.py [--prompts 335] [--batch 32] [--new-tokens 32]

Prints prompts/s and generated tokens/s for both, and the ratio (measured in the same run).
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from troupe.chat import conversation, user_turn  # noqa: E402
from troupe.demo.tiny import build_tiny_model  # noqa: E402
from troupe.evaluation.generation import Case, generate, load_model, prompt_text  # noqa: E402
from troupe.recipe import load_recipe  # noqa: E402
from troupe.schema import Evaluate  # noqa: E402

CHARS = "雾港河面药潮灯下医生病人船长信到了说下去我知道你他她们这那是不在有一个来去好的了吗呢吧"


def kaltsit_cases(count: int, seed: int = 0) -> list[Case]:
    """Prompts shaped like the kaltsit dataset: its system prompt and user template, 3 context lines
    of 10–40 characters (the seed's replies average 23)."""
    rng = random.Random(seed)
    spec = load_recipe("kaltsit", root=REPO).spec

    def line() -> str:
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(10, 40))) + "。"

    cases = []
    for _ in range(count):
        context = "\n".join(f"[{rng.choice(['博士', '阿米娅', '凯尔希'])}]:{line()}" for _ in range(3))
        user = user_turn(spec.prompt.user_template, context, spec.character.name)
        cases.append(Case(conversation(spec.prompt.system, [user]), line(), {}))
    return cases


def run(model, tokenizer, cases, batch: int, new_tokens: int) -> tuple[float, int]:
    settings = Evaluate(batch_size=batch, max_new_tokens=new_tokens)
    prompts = [prompt_text(tokenizer, c) for c in cases]
    start = time.perf_counter()
    replies = generate(model, tokenizer, prompts, settings, stop_ids=[], desc=f"batch {batch}")
    seconds = time.perf_counter() - start
    return seconds, sum(len(tokenizer(r.raw, add_special_tokens=False)["input_ids"]) for r in replies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=335)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    cases = kaltsit_cases(args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        texts = [m["content"] for c in cases for m in c.prompt] + [c.reference for c in cases]
        build_tiny_model(Path(tmp), texts)
        model, tokenizer = load_model(tmp, Path(tmp))
        rows = [
            ("one by one (batch 1)", *run(model, tokenizer, cases, 1, args.new_tokens)),
            (f"batched (batch {args.batch}, left padding)", *run(model, tokenizer, cases, args.batch, args.new_tokens)),
        ]
    base = rows[0][1]
    print(
        f"\n{args.prompts} kaltsit-shaped prompts, {args.new_tokens} new tokens each, tiny model, "
        f"{model.device.type.upper()}\n"
    )
    print(
        f"| {'run':34} | wall time | prompts/s | tokens/s | speed-up |\n|{'-' * 36}|-----------|-----------|"
        "----------|----------|"
    )
    for name, seconds, tokens in rows:
        print(
            f"| {name:34} | {seconds:7.1f} s | {args.prompts / seconds:9.1f} | {tokens / seconds:8.0f} | "
            f"{base / seconds:7.1f}× |"
        )


if __name__ == "__main__":
    main()
