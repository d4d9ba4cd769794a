"""`troupe serve` as the official `openai` client sees it, on a real uvicorn server on 127.0.0.1 with
a tiny model built here (random weights; a random LoRA adapter where training leaves one): models,
chat with and without streaming, 4xx for bad requests; the limits (body size, `n`, invalid
Unicode, a per-request time cap, a client that disconnects, an error mid-stream); and the terminal
chat forgetting its oldest turns to stay inside the model's context."""

import shutil
import threading
import time
from types import SimpleNamespace

import httpx
import openai
import pytest
from helpers import REPO, save_as_trained_adapter

from troupe.recipe import load_recipe
from troupe.serve import Character, chat, create_app

pytestmark = pytest.mark.slow
MAX_BODY = 64 * 1024
LONG = [{"role": "user", "content": "灯塔的灯还亮着吗？"}]  # greedy on this model: no stop token for many tokens


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The demo recipe with a tiny base model and an untrained LoRA adapter in outputs/demo/adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from troupe.demo.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("serve")
    shutil.copytree(REPO / "recipes", root / "recipes")
    base = root / "models" / "tiny"
    build_tiny_model(base, ["雾港的灯亮了。", "你好，旅人。", "Hello there, traveller.", "灯塔的灯还亮着吗？"] * 20)
    recipe = load_recipe("demo", root=root)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj"]))
    save_as_trained_adapter(recipe, lora, AutoTokenizer.from_pretrained(base))
    return recipe


@pytest.fixture(scope="module")
def server(recipe):
    """create_app on uvicorn in a thread; `generated` records (max_tokens, tokens returned) per generation."""
    import uvicorn

    character, generated = Character(recipe), []
    plain_generate = character.generate

    def recorded(prompt, max_tokens, *args, **kwargs):
        tokens = plain_generate(prompt, max_tokens, *args, **kwargs)
        generated.append((max_tokens, len(tokens)))
        return tokens

    character.generate = recorded
    uv = uvicorn.Server(uvicorn.Config(create_app(character, max_body=MAX_BODY), port=0, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{uv.servers[0].sockets[0].getsockname()[1]}/v1"
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
    yield SimpleNamespace(url=url, client=client, character=character, generated=generated, plain=plain_generate)
    uv.should_exit = True
    thread.join(timeout=30)


def ask(client, **body):
    return client.chat.completions.create(**{"model": "demo", "messages": LONG, "max_tokens": 6, **body})


def test_models_and_chat_with_and_without_streaming(server):
    assert [model.id for model in server.client.models.list()] == ["demo"]
    reply = ask(server.client)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 6 and reply.usage.prompt_tokens > 0
    chunks = list(ask(server.client, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip() == choice.message.content


@pytest.mark.parametrize(
    "body, error, says",
    [
        ({"n": 2}, openai.BadRequestError, "one choice per request"),
        ({"model": "gpt-4"}, openai.NotFoundError, "this server has 'demo'"),
        ({"max_tokens": 10**6}, openai.BadRequestError, "too many tokens"),
        ({"messages": []}, openai.BadRequestError, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, openai.BadRequestError, "role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            openai.BadRequestError,
            "'image_url', not text",
        ),
        ({"messages": [{"role": "user", "content": "x" * MAX_BODY}]}, openai.APIStatusError, "larger than 65536"),
    ],
)
def test_bad_requests_get_a_4xx_the_client_raises(server, body, error, says):
    with pytest.raises(error) as raised:
        ask(server.client, **body)
    assert 400 <= raised.value.status_code < 500 and says in raised.value.body["message"]


def test_text_parts_are_accepted_like_a_string(server):
    parts = [{"role": "user", "content": [{"type": "text", "text": "灯塔的灯还亮着吗？"}]}]
    assert (
        ask(server.client, messages=parts).choices[0].message.content == ask(server.client).choices[0].message.content
    )


@pytest.mark.parametrize(
    "body, status, says",
    [
        (b'{"model": "demo", "messages": [{"role": "user", "content": "\\ud800"}]}', 400, "lone surrogate U+D800"),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "caf\xe9"}]}', 400, "error parsing the body"),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "a\\u0000b"}]}', 400, "control character"),
        (b"{not json", 400, "JSON decode error"),
    ],
)
def test_bodies_that_are_not_valid_unicode_json_get_a_400_json(server, body, status, says):
    response = httpx.post(f"{server.url}/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and says in response.json()["error"]["message"]


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(server):
    def chunks():
        yield b'{"model": "demo", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(
        f"{server.url}/chat/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["error"]["message"] == "request body larger than 65536 bytes"


def wait_for(generated: list, max_tokens: int) -> int:
    """Tokens returned by the generation asked for `max_tokens` new tokens, once it has returned."""
    for _ in range(600):
        found = [n for asked, n in generated if asked == max_tokens]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no generation of max_tokens={max_tokens} returned")


@pytest.fixture
def slow_model(server):
    """Every forward pass takes 10 ms more: generation at a steady pace, however fast the machine."""
    handle = server.character.model.get_base_model().register_forward_pre_hook(lambda *_: time.sleep(0.01))
    yield
    handle.remove()


def test_the_time_cap_and_a_client_that_leaves_both_stop_the_generation(server, slow_model):
    control = ask(server.client, max_tokens=100)  # the control: 100 tokens (≥ 1 s) and no stop token
    assert control.usage.completion_tokens == 100 and control.choices[0].finish_reason == "length"
    prompt, _ = server.character.prepare(LONG)
    started = time.perf_counter()
    capped = server.plain(prompt, 1500, 0.0, 1.0, max_time=0.3)
    assert len(capped) < 100 and time.perf_counter() - started < 5
    assert server.character.finish_reason(capped) == "length"

    body = {"model": "demo", "messages": LONG, "max_tokens": 1499, "stream": True}
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body, timeout=60) as response:
        next(line for line in response.iter_lines() if line.startswith("data:"))  # then hang up
    assert wait_for(server.generated, 1499) < 100

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/chat/completions", json={**body, "max_tokens": 1498, "stream": False}, timeout=0.2)
    assert wait_for(server.generated, 1498) < 100
    assert ask(server.client).choices[0].finish_reason == "length"  # and the queue is free


def test_an_error_during_generation_ends_the_stream_with_an_error_event(server, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(server.character.model, "generate", fails)
    with pytest.raises(openai.APIError, match="generation failed: RuntimeError: CUDA out of memory"):
        list(ask(server.client, stream=True))
    with pytest.raises(openai.InternalServerError, match="generation failed"):
        ask(server.client)


def test_the_terminal_chat_forgets_the_oldest_turns_to_stay_in_context(recipe):
    from transformers import AutoTokenizer

    tokenizer, unit = AutoTokenizer.from_pretrained(recipe.layout.adapter_dir), "灯塔的灯还亮着吗？"
    line = unit * int(650 / (len(tokenizer(unit * 10)["input_ids"]) / 10))  # about 650 of the model's 2048 tokens
    said = iter([line, line, line, line * 10, "/exit"])  # the third outgrows the context; the fourth alone does
    written = []
    short_replies = load_recipe("demo", ["troupe.evaluate.max_new_tokens=4"], root=recipe.root)
    chat(short_replies, read=lambda _prompt: next(said), write=written.append)
    replies = [line for line in written if line.startswith("闻钟> ")]
    assert len(replies) == 3
    assert any(line.startswith("(forgot the oldest 2 turns to stay within 2048 tokens)") for line in written)
    assert written[-1].startswith("(not sent: too many tokens: prompt ")
