"""The optional LLM judge against a real OpenAI-compatible HTTP server on 127.0.0.1 (started here):
requests counted up front, retries, failures recorded as failures, the key written nowhere."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from troupe.evaluation import SystemRun, judge
from troupe.evaluation.generation import Case, Reply
from troupe.recipe import load_recipe

KEY = "sk-test-secret-0123456789"


class JudgeServer:
    """/v1/chat/completions answering like a judge would; the first request gets a 500."""

    def __init__(self):
        self.requests, self.first = [], True
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def answer(self, prompt: str) -> str:
        if "FAILME" in prompt:
            return "I would rather not say."
        if "Score it from 1" in prompt:
            return '{"voice": 4, "in_character": 5, "coherence": 3, "engagement": 4, "length": 2}'
        if "How well does the text match" in prompt:
            return '{"score": 8}' if "雾" in prompt.split("Text to judge:")[1] else '{"score": 2}'
        return 'Reasoning… {"winner": "B"}'

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.headers.get("Authorization"), body))
                if server.first:
                    server.first = False
                    return self._send(500, {"error": "warming up"})
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._send(401, {"error": "bad key"})
                content = server.answer(body["messages"][0]["content"])
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def server():
    server = JudgeServer()
    yield server
    server.httpd.shutdown()


def runs_for(replies: dict[str, list[str]]) -> dict[str, SystemRun]:
    return {name: SystemRun({}, [Reply(t, t) for t in texts], []) for name, texts in replies.items()}


def test_judge_scores_with_controls_and_records_failures(project, server, monkeypatch, capsys):
    monkeypatch.setenv("TROUPE_JUDGE_URL", server.url)
    monkeypatch.setenv("TROUPE_JUDGE_MODEL", "judge-model")
    monkeypatch.setenv("TROUPE_JUDGE_KEY", KEY)
    recipe = load_recipe("demo", ["troupe.evaluate.judge_items=2", "troupe.evaluate.judge_repeats=3"])
    cases = [
        Case([{"role": "user", "content": "[小禾]:雾大吗"}], "雾很大。", {}),
        Case([{"role": "user", "content": "[小禾]:走吗"}], "雾里别走。", {}),
    ]
    runs = runs_for({"base": ["Sure!", "FAILME"], "adapter": ["雾会散的。", "雾里别走远。"]})
    out = project / "outputs" / "demo" / "eval"
    result = judge.run(recipe, cases, runs, out)

    # per item: style for base, adapter, references + rubric for base, adapter + 2 pairwise orders; × 3 repeats
    expected_requests = 2 * (3 + 2 + 2) * 3
    assert f"LLM judge: {expected_requests} requests to judge-model" in capsys.readouterr().out
    assert len(server.requests) == expected_requests + 1  # one retry after the 500
    assert all(body["temperature"] <= 0.2 for _, body in server.requests)
    # base's FAILME reply: its rubric and style tasks and both pairwise orders of item 2, 3 times each
    assert result["requests"] == expected_requests and result["failed"] == 12
    assert result["style_0_to_1"] == {"adapter": 0.8, "base": 0.2, "references": 0.8}
    assert result["rubric_1_to_5"]["adapter"] == {
        "voice": 4,
        "in_character": 5,
        "coherence": 3,
        "engagement": 4,
        "length": 2,
    }
    assert result["pairwise"] == {"adapter": 3, "base": 3, "tie": 0}  # always "B": each side wins its turn as B
    raw = [json.loads(line) for line in (out / "judge_raw.jsonl").read_text().splitlines()]
    assert len(raw) == expected_requests and sum("error" in r for r in raw) == 12
    for path in project.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="ignore"), f"the judge key leaked into {path}"


def test_no_judge_unless_configured(project, monkeypatch):
    monkeypatch.delenv("TROUPE_JUDGE_URL", raising=False)
    assert judge.run(load_recipe("demo"), [], {}, project / "eval") is None
