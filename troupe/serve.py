"""Talk to the character: an OpenAI-compatible server, a terminal chat, and the vLLM command.

    troupe serve kaltsit [--port 8000]   # http://127.0.0.1:8000/v1/chat/completions, /v1/models
    troupe chat kaltsit                  # terminal chat: /reset, /exit
    troupe vllm kaltsit                  # the production route: prints the vLLM command

The server (FastAPI + uvicorn, generation through transformers) uses the merged model when
outputs/<slug>/merged exists, else the base model with the adapter. The recipe's system prompt is
applied unless a request brings its own. Bad requests get a 4xx JSON error; the server stays up.
One generation runs at a time (requests queue), so any number of clients can connect.
"""

import json
import sys
import threading
import time
import uuid

from troupe import provenance
from troupe.evaluation.generation import load_model, stop_token_ids
from troupe.layout import model_location
from troupe.recipe import Recipe

MAX_NEW_TOKENS = 2048


class Character:
    """A loaded model that answers chat messages as the recipe's character."""

    def __init__(self, recipe: Recipe):
        layout = recipe.layout
        choice, config = provenance.model_to_load(layout), provenance.training_config(layout)
        print(choice.note)
        if choice.kind == "merged":
            self.model, self.tokenizer = load_model(str(choice.folder), choice.folder, training=config)
        else:
            base = model_location(config["base_model"], recipe.root)
            self.model, self.tokenizer = load_model(base, choice.folder, choice.folder, config)
        self.name, self.system = recipe.slug, recipe.spec.prompt.system
        self.default_tokens = recipe.spec.evaluate.max_new_tokens
        self.stops = stop_token_ids(self.model, self.tokenizer, config.get("eot_tokens") or [])
        self.context = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.lock = threading.Lock()

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The conversation rendered with the training chat template, the recipe's system prompt first
        unless the messages bring their own."""
        if self.system and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system}, *messages]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def check_budget(self, prompt: list[int], max_tokens: int) -> None:
        if max_tokens > MAX_NEW_TOKENS or len(prompt) + max_tokens > self.context:
            raise ValueError(
                f"too many tokens: prompt {len(prompt)} + max_tokens {max_tokens} exceeds the model's "
                f"{self.context} (max_tokens at most {MAX_NEW_TOKENS})"
            )

    def generate(self, prompt: list[int], max_tokens: int, temperature: float, top_p: float, streamer=None):
        """New token ids for a prompt; one generation at a time."""
        import torch

        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {}
        inputs = torch.tensor([prompt], device=self.model.device)
        with self.lock, torch.no_grad():
            out = self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=max_tokens,
                eos_token_id=self.stops,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=streamer,
                **sampling,
            )
        return out[0, len(prompt) :].tolist()

    def reply(
        self, messages: list[dict], max_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> tuple[str, str, dict]:
        """(text, finish_reason, usage) for a conversation."""
        prompt = self.prompt_ids(messages)
        max_tokens = max_tokens or self.default_tokens
        self.check_budget(prompt, max_tokens)
        tokens = self.generate(prompt, max_tokens, temperature, top_p)
        stopped = bool(tokens) and tokens[-1] in self.stops
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(tokens),
            "total_tokens": len(prompt) + len(tokens),
        }
        return text, "stop" if stopped or len(tokens) < max_tokens else "length", usage


# ---- the OpenAI-compatible server -----------------------------------------------------------------


def create_app(character: Character):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    class Message(BaseModel):
        role: str = Field(pattern="^(system|user|assistant)$")
        content: str

    class ChatRequest(BaseModel):
        model: str
        messages: list[Message] = Field(min_length=1)
        max_tokens: int | None = Field(None, ge=1)
        temperature: float = Field(0.0, ge=0, le=2)
        top_p: float = Field(1.0, gt=0, le=1)
        stream: bool = False

    app = FastAPI(title=f"troupe: {character.name}")

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        return error(
            400, "invalid request: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        )

    @app.get("/health")
    def health():
        return {"status": "ok", "model": character.name}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": character.name, "object": "model", "owned_by": "troupe"}]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest):
        if request.model != character.name:
            return error(404, f"unknown model '{request.model}'; this server has '{character.name}'", "not_found")
        messages = [m.model_dump() for m in request.messages]
        if request.stream:
            return _stream(character, request, messages, error)
        try:
            text, finish, usage = character.reply(messages, request.max_tokens, request.temperature, request.top_p)
        except ValueError as exc:
            return error(400, str(exc))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": character.name,
            "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        }

    return app


def _stream(character: Character, request, messages: list[dict], error):
    """Server-sent events in OpenAI's chat.completion.chunk shape, ending with `data: [DONE]`."""
    from fastapi.responses import StreamingResponse
    from transformers import TextIteratorStreamer

    prompt = character.prompt_ids(messages)
    max_tokens = request.max_tokens or character.default_tokens
    try:
        character.check_budget(prompt, max_tokens)
    except ValueError as exc:
        return error(400, str(exc))
    streamer = TextIteratorStreamer(character.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    worker = threading.Thread(
        target=character.generate, daemon=True, args=(prompt, max_tokens, request.temperature, request.top_p, streamer)
    )
    worker.start()
    identity, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None) -> str:
        body = {
            "id": identity,
            "object": "chat.completion.chunk",
            "created": created,
            "model": character.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def events():
        yield chunk({"role": "assistant"})
        for piece in streamer:
            if piece:
                yield chunk({"content": piece})
        worker.join()
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def serve(recipe: Recipe, port: int) -> None:
    import uvicorn

    character = Character(recipe)
    print(f"serving {character.name} on http://127.0.0.1:{port}/v1 (OpenAI-compatible; Ctrl-C stops)")
    uvicorn.run(create_app(character), host="127.0.0.1", port=port, log_level="warning")


# ---- the terminal chat and the vLLM route ----------------------------------------------------------


def chat(recipe: Recipe, read=input, write=print) -> None:
    """A conversation in the terminal: history kept; /reset forgets it, /exit (or end of input) leaves."""
    character = Character(recipe)
    write(f"talking to {recipe.spec.character.name} ({recipe.slug}); /reset forgets, /exit leaves")
    history: list[dict] = []
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            return
        if line == "/exit":
            return
        if line == "/reset":
            history.clear()
            write("(forgotten)")
        elif line:
            history.append({"role": "user", "content": line})
            text, _, _ = character.reply(history)
            history.append({"role": "assistant", "content": text})
            write(f"{recipe.spec.character.name}> {text}")


def vllm_command(recipe: Recipe) -> str:
    """The vLLM command for the production route: the merged model when it was made from the current
    adapter, or the base model with the adapter as a LoRA module (as seeds 001 and 003 serve it)."""
    layout = recipe.layout
    choice, config = provenance.model_to_load(layout), provenance.training_config(layout)
    print(choice.note, file=sys.stderr)
    if choice.kind == "merged":
        return f"vllm serve {choice.folder} --served-model-name {recipe.slug}"
    rank = int(config.get("lora_r") or 8)
    rank_flag = f" --max-lora-rank {max(16, 2 ** (rank - 1).bit_length())}" if rank > 16 else ""
    base = model_location(config["base_model"], recipe.root)
    return f"vllm serve {base} --enable-lora --lora-modules {recipe.slug}={choice.folder}{rank_flag}"
