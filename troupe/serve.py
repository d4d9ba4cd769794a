"""Talk to the character: an OpenAI-compatible server, a terminal chat, and the vLLM command.

    troupe serve kaltsit [--port 8000]   # http://127.0.0.1:8000/v1/chat/completions, /v1/models
    troupe chat kaltsit                  # terminal chat: /reset, /exit
    troupe vllm kaltsit                  # the production route: prints the vLLM command

The server (FastAPI + uvicorn, generation through transformers) uses the merged model when
outputs/<slug>/merged exists, else the base model with the adapter. The recipe's system prompt is
applied unless a request brings its own. One generation runs at a time (requests queue), so any
number of clients can connect. Limits, each answered with a JSON error in OpenAI's shape:
- a body over MAX_BODY_BYTES → 413, refused before it is parsed;
- malformed JSON, unknown roles, `n` other than 1, any string (the model's name too) that is not
  valid Unicode (a lone surrogate) or holds control characters, a prompt + max_tokens over the
  model's context → 400;
- a generation stops after MAX_SECONDS (finish_reason "length"), or at the next token once the
  client has disconnected (stream or not), so an abandoned request never holds the queue;
- an error during a stream ends it with an `error` event, then `[DONE]`.
The port is bound before the model loads and before "serving on …" is printed: a port in use is a
one-line error. The terminal chat keeps the conversation inside the model's context by forgetting the oldest
exchanges, and says so.
"""

import asyncio
import contextlib
import json
import logging
import socket
import sys
import threading
import time
import uuid
from typing import Literal

from troupe import provenance
from troupe.chat import MESSAGE_ROLES, conversation
from troupe.decoding import character_streamer, decode, utf8_guard
from troupe.errors import TroupeError
from troupe.evaluation.generation import load_model, stop_token_ids
from troupe.layout import model_location
from troupe.recipe import Recipe
from troupe.text import content_text, text_problem

MAX_NEW_TOKENS = 2048
MAX_BODY_BYTES = 2 * 1024 * 1024  # a 128k-token prompt, even with every character \u-escaped, fits
MAX_SECONDS = 120.0  # one generation's wall time at most
log = logging.getLogger("troupe.serve")


class Character:
    """A loaded model that answers chat messages as the recipe's character."""

    def __init__(self, recipe: Recipe):
        layout = recipe.layout
        choice, config = provenance.model_to_load(layout), provenance.training_config(layout)
        print(choice.note)
        self.loaded = "merged" if choice.kind == "merged" else "base + adapter"
        if choice.kind == "merged":
            self.model, self.tokenizer = load_model(str(choice.folder), choice.folder, training=config)
        else:
            base = model_location(config["base_model"], recipe.root)
            self.model, self.tokenizer = load_model(base, choice.folder, choice.folder, config)
        self.name, self.system = recipe.slug, recipe.spec.prompt.system
        self.default_tokens = recipe.spec.evaluate.max_new_tokens
        self.stops = stop_token_ids(self.model, self.tokenizer, config.get("eot_tokens") or [])
        self.context = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.guard = utf8_guard(self.tokenizer)  # only whole characters, never U+FFFD (troupe.decoding)
        self.lock = threading.Lock()

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The conversation rendered with the training chat template, the recipe's system prompt first
        unless the messages bring their own."""
        text = self.tokenizer.apply_chat_template(
            conversation(self.system, messages), tokenize=False, add_generation_prompt=True
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def check_budget(self, prompt: list[int], max_tokens: int) -> None:
        if max_tokens > MAX_NEW_TOKENS or len(prompt) + max_tokens > self.context:
            raise ValueError(
                f"too many tokens: prompt {len(prompt)} + max_tokens {max_tokens} exceeds the model's "
                f"{self.context} (max_tokens at most {MAX_NEW_TOKENS})"
            )

    def prepare(self, messages: list[dict], max_tokens: int | None = None) -> tuple[list[int], int]:
        """(prompt ids, new tokens allowed) for a conversation; ValueError when the chat template
        refuses it (e.g. Gemma 2 and a system turn) or it does not fit the model's context."""
        from jinja2 import TemplateError

        try:
            prompt = self.prompt_ids(messages)
        except TemplateError as exc:
            raise ValueError(f"the chat template refuses this conversation: {exc}") from None
        max_tokens = max_tokens or self.default_tokens
        self.check_budget(prompt, max_tokens)
        return prompt, max_tokens

    def generate(
        self,
        prompt: list[int],
        max_tokens: int,
        temperature: float,
        top_p: float,
        streamer=None,
        cancel: threading.Event | None = None,
        max_time: float = MAX_SECONDS,
    ) -> list[int]:
        """New token ids for a prompt, one generation at a time; it stops after `max_time` seconds or
        at the next token once `cancel` is set (nothing runs if it was set while queued)."""
        import torch

        cancel = cancel or threading.Event()
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {}
        inputs = torch.tensor([prompt], device=self.model.device)
        with self.lock, torch.no_grad():
            if cancel.is_set():
                return []
            out = self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=max_tokens,
                max_time=max_time,
                stopping_criteria=_stopped_by(cancel),
                eos_token_id=self.stops,
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=streamer,
                logits_processor=self.guard,
                **sampling,
            )
        return out[0, len(prompt) :].tolist()

    def answer(self, prompt: list[int], tokens: list[int]) -> tuple[str, str, dict]:
        """(text, finish_reason, usage) of a finished generation: "stop" when it ended on a stop
        token, else "length" (out of tokens or of time)."""
        text = decode(self.tokenizer, tokens).strip()
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(tokens),
            "total_tokens": len(prompt) + len(tokens),
        }
        return text, self.finish_reason(tokens), usage

    def finish_reason(self, tokens: list[int]) -> str:
        return "stop" if tokens and tokens[-1] in self.stops else "length"

    def reply(
        self, messages: list[dict], max_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0
    ) -> tuple[str, str, dict]:
        """(text, finish_reason, usage) for a conversation."""
        prompt, max_tokens = self.prepare(messages, max_tokens)
        return self.answer(prompt, self.generate(prompt, max_tokens, temperature, top_p))

    def fitted(self, history: list[dict]) -> list[dict]:
        """The latest part of a conversation (user, assistant, …, user) that leaves room for a reply
        in the model's context: the oldest exchanges go first. ValueError if the last message alone
        is too long."""
        for start in range(0, len(history), 2):
            try:
                self.prepare(history[start:])
                return history[start:]
            except ValueError:
                if start + 1 >= len(history):
                    raise
        return history


def _stopped_by(cancel: threading.Event):
    """transformers stopping criteria that end a generation at the next token once `cancel` is set
    (the usual way to stop model.generate from another thread)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Cancelled()])


class Generation:
    """One request's generation on a worker thread: its tokens (and, streamed, its text pieces from
    `streamer`), the error it ended with, if any, and `cancel` to stop it."""

    def __init__(self, character: Character, prompt: list[int], request, max_tokens: int, max_time: float):
        self.tokens: list[int] = []
        self.error: Exception | None = None
        self.cancel = threading.Event()
        self.streamer = None
        if request.stream:
            self.streamer = character_streamer(character.tokenizer, skip_special_tokens=True)
        args = (prompt, max_tokens, request.temperature, request.top_p)
        self.thread = threading.Thread(target=self._run, args=(character, args, max_time), daemon=True)
        self.thread.start()

    def _run(self, character: Character, args: tuple, max_time: float) -> None:
        try:
            self.tokens = character.generate(*args, streamer=self.streamer, cancel=self.cancel, max_time=max_time)
        except Exception as exc:  # reported to the client (a 500 or a stream's error event), never left hanging
            log.error("generation failed: %s: %s", type(exc).__name__, exc)
            self.error = exc
        finally:
            if self.streamer is not None:
                self.streamer.end()  # the stream always ends, even when generate never started

    async def finished(self, request) -> bool:
        """Wait for the generation; False (and the generation cancelled) if the client disconnects."""
        while self.thread.is_alive():
            if await request.is_disconnected():
                self.cancel.set()
                return False
            await asyncio.sleep(0.05)
        return True


# ---- the OpenAI-compatible server -----------------------------------------------------------------


def create_app(character: Character, max_body: int = MAX_BODY_BYTES, max_seconds: float = MAX_SECONDS):
    from fastapi import FastAPI, Request
    from starlette.concurrency import run_in_threadpool

    ChatRequest = _request_model()
    app = FastAPI(title=f"troupe: {character.name}")
    app.add_middleware(BodyLimit, limit=max_body)
    _json_errors(app)

    @app.get("/health")
    def health():
        return {"status": "ok", "model": character.name}

    @app.get("/v1/models")
    def models():
        model = {"id": character.name, "object": "model", "created": 0, "owned_by": "troupe"}
        return {"object": "list", "data": [model]}

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest, raw: Request):
        if request.model != character.name:
            return error(404, f"unknown model '{request.model}'; this server has '{character.name}'", "not_found")
        messages = [m.model_dump() for m in request.messages]
        asked = request.max_tokens or request.max_completion_tokens
        try:  # tokenising a long prompt takes a while: off the event loop
            prompt, max_tokens = await run_in_threadpool(character.prepare, messages, asked)
        except ValueError as exc:
            return error(400, str(exc))
        job = Generation(character, prompt, request, max_tokens, max_seconds)
        if request.stream:
            return _stream(character, job)
        if not await job.finished(raw):
            return error(499, "the client disconnected")
        if job.error is not None:
            return error(500, f"generation failed: {type(job.error).__name__}: {job.error}", "server_error")
        text, finish, usage = character.answer(prompt, job.tokens)
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        return {**_envelope(character, "chat.completion"), "usage": usage, "choices": [choice]}

    return app


def _request_model():
    """The body of /v1/chat/completions: OpenAI's fields that troupe honours, checked on arrival."""
    from pydantic import BaseModel, Field, field_validator

    class Checked(BaseModel):
        @field_validator("*")
        @classmethod
        def _encodable(cls, value):  # every string may be echoed back (a 404 names the model): UTF-8 text
            if isinstance(value, str) and (problem := text_problem(value)):
                raise ValueError(problem)
            return value

    class Message(Checked):
        role: Literal[MESSAGE_ROLES]
        content: str | list[dict]

        @field_validator("content")
        @classmethod
        def _text(cls, content):  # a string or text parts, as the converters read them
            text = content_text(content)
            if text is None:
                raise ValueError("no text")
            if problem := text_problem(text):
                raise ValueError(problem)
            return text

    class ChatRequest(Checked):
        model: str
        messages: list[Message] = Field(min_length=1)
        max_tokens: int | None = Field(None, ge=1)
        max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name for max_tokens")
        temperature: float = Field(0.0, ge=0, le=2)
        top_p: float = Field(1.0, gt=0, le=1)
        n: int = 1
        stream: bool = False

        @field_validator("n")
        @classmethod
        def _one_choice(cls, n):
            if n != 1:
                raise ValueError("this server returns one choice per request: send n=1 (or several requests)")
            return n

    return ChatRequest


def _json_errors(app) -> None:
    """Every error as JSON in OpenAI's shape: an invalid body → 400, an HTTP error (404, 413) with
    its status, a bug → 500 (its traceback stays in the server log)."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        found = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return error(400, f"invalid request: {found}")

    @app.exception_handler(HTTPException)
    async def refused(_request: Request, exc: HTTPException):
        return error(
            exc.status_code, str(exc.detail), "invalid_request_error" if exc.status_code < 500 else "server_error"
        )

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception):
        return error(500, f"internal error: {type(exc).__name__}", "server_error")


def error(status: int, message: str, kind: str = "invalid_request_error"):
    """A JSON error in OpenAI's shape ({"error": {"message", "type"}}), which its clients raise as such."""
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind}})


class BodyLimit:
    """ASGI middleware refusing a request body over `limit` bytes with 413 before it is parsed: at
    once by its Content-Length, or, sent in chunks, as soon as the bytes read pass the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await error(413, self._message())(scope, receive, send)
        read = 0

        async def counted():
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self.limit:
                from starlette.exceptions import HTTPException

                raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body larger than {self.limit} bytes"


def _envelope(character: Character, kind: str) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": character.name}


def _stream(character: Character, job: Generation):
    """Server-sent events in OpenAI's chat.completion.chunk shape, ending with `data: [DONE]`; a
    generation error becomes an `error` event; a client that leaves cancels the generation."""
    from fastapi.responses import StreamingResponse
    from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

    envelope = _envelope(character, "chat.completion.chunk")

    def event(body: dict) -> str:
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def chunk(delta: dict, finish: str | None = None) -> str:
        return event({**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    async def events():
        try:
            yield chunk({"role": "assistant"})
            async for piece in iterate_in_threadpool(job.streamer):
                if piece:
                    yield chunk({"content": piece})
            await run_in_threadpool(job.thread.join)
            if job.error is not None:
                message = f"generation failed: {type(job.error).__name__}: {job.error}"
                yield event({"error": {"message": message, "type": "server_error"}})
            else:
                yield chunk({}, character.finish_reason(job.tokens))
            yield "data: [DONE]\n\n"
        finally:
            job.cancel.set()  # reached early only when the client has gone: stop at the next token

    return StreamingResponse(events(), media_type="text/event-stream")


@contextlib.contextmanager
def running(character: Character, port: int = 0, **limits):
    """The app on uvicorn in a thread on 127.0.0.1 (port 0: a free one), for as long as the block
    runs; yields its OpenAI base URL (http://127.0.0.1:<port>/v1)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(character, **limits), log_level="warning"))
    with listening(port) as sock:
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.05)
        if not server.started:
            raise TroupeError(f"the server did not start on 127.0.0.1:{port}")
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def listening(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: a free one), for uvicorn to serve on; a port in use is a
    one-line TroupeError, raised before anything is loaded or announced. It is not listening yet:
    uvicorn listens once the app is ready, so a client that comes while the model loads is refused
    (and retries) instead of waiting on a connection nobody answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a restart finds it free
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise TroupeError(
            f"cannot serve on 127.0.0.1 port {port}: {exc.strerror}; stop what uses it or pick another (PORT=…)"
        ) from None
    return sock


def serve(recipe: Recipe, port: int) -> None:
    import uvicorn

    with listening(port) as sock:
        character = Character(recipe)
        print(f"serving {character.name} on http://127.0.0.1:{port}/v1 (OpenAI-compatible; Ctrl-C stops)")
        uvicorn.Server(uvicorn.Config(create_app(character), log_level="warning")).run(sockets=[sock])


# ---- the terminal chat and the vLLM route ----------------------------------------------------------


def chat(recipe: Recipe, read=input, write=print) -> None:
    """A conversation in the terminal: history kept (the oldest exchanges forgotten, with a note, when
    it outgrows the model's context); /reset forgets it, /exit (or end of input) leaves."""
    character = Character(recipe)
    write(f"talking to {recipe.spec.character.name} ({recipe.slug}); /reset forgets, /exit leaves")
    history: list[dict] = []
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            return
        except UnicodeDecodeError:
            write("(that line was not UTF-8 text; nothing sent)")
            continue
        if line == "/exit":
            return
        if line == "/reset":
            history.clear()
            write("(forgotten)")
        elif line:
            history = _turn(character, history, line, recipe.spec.character.name, write)


def _turn(character: Character, history: list[dict], line: str, name: str, write) -> list[dict]:
    """One exchange of the terminal chat; returns the history to keep."""
    asked = [*history, {"role": "user", "content": line}]
    try:
        kept = character.fitted(asked)
    except ValueError as exc:
        write(f"(not sent: {exc})")
        return history
    if len(kept) < len(asked):
        write(f"(forgot the oldest {len(asked) - len(kept)} turns to stay within {character.context} tokens)")
    text, _, _ = character.reply(kept)
    write(f"{name}> {text}")
    return [*kept, {"role": "assistant", "content": text}]


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
