"""Chat turns: how every conversation the model sees opens, and the role names of each layout.

    conversation(recipe.spec.prompt.system, [user_turn(template, context, name)])

Training (troupe.dataset and the converters), evaluation, serve, export's Ollama template and the
benchmarks all build their conversations through `conversation`, so the system prompt a model is
trained with is the one it is served and evaluated with. `ROLES` reads a turn's role in either
layout (messages or ShareGPT) as one of `MESSAGE_ROLES`; `SHAREGPT_ROLES` writes ShareGPT's.
"""

MESSAGE_ROLES = ("system", "user", "assistant")  # a turn's role in the messages layout (and OpenAI's API)
SHAREGPT_ROLES = dict(zip(MESSAGE_ROLES, ("system", "human", "gpt"), strict=True))
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


def conversation(system_prompt: str | None, turns: list[dict]) -> list[dict]:
    """The recipe's system turn, then `turns`; no system turn when the prompt is empty or the turns
    bring their own (a client's request). When the turns carry a `train` flag (Axolotl's
    message_field_training), the system turn carries `train: false`, so it is never trained."""
    if not system_prompt or any(turn["role"] == "system" for turn in turns):
        return list(turns)
    system = {"role": "system", "content": system_prompt}
    if any("train" in turn for turn in turns):
        system["train"] = False
    return [system, *turns]


def user_turn(template: str, context: str, character: str) -> dict:
    """The recipe's user_template with `{context}` and `{character}` filled in, and nothing else, so
    braces in story text are never interpreted."""
    return {"role": "user", "content": template.replace("{character}", character).replace("{context}", context)}


def as_messages(record: dict) -> list[dict]:
    """A dataset record in either chat layout ({"messages"} or ShareGPT's {"conversations"}) as
    [{role, content}]."""
    if "messages" in record:
        return [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    return [{"role": ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]]


def as_sharegpt(messages: list[dict]) -> list[dict]:
    """Messages as ShareGPT turns ({"from", "value"})."""
    return [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in messages]
