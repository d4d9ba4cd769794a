"""A real HTTP server on 127.0.0.1 that serves a folder laid out like ArknightsStoryJson
(`{server}/gamedata/story/….json`), with faults to inject per path, for download tests and
bench/download.py.

    with StoryServer(folder, latency=0.1) as server:
        server.inject("zh_CN/gamedata/story/a.json", "500", "429", "truncate")
        server.inject("zh_CN/gamedata/story/b.json", "dribble")   # or wait_an_hour, huge, redirect
        ... server.base_url ... server.requests
"""

import sys
import threading
import time
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

READER = "https://050644zf.github.io/ArknightsStoryTextReader/#/zh_CN/content?f="  # how users link a story
DEMO_STORIES = {  # story path on the mirror → the demo's file in recipes/demo/
    "obt/main/level_demo_01": "level_demo_01.json",
    "obt/main/level_demo_02": "level_demo_02.json",
    "activities/a900/level_demo_03": "level_demo_03.json",
}
FAULTS = ("500", "429", "404", "timeout", "truncate", "garbage", "wait_an_hour", "dribble", "huge", "redirect")


class _QuietOnHangUp(ThreadingHTTPServer):
    """A client that hangs up mid-reply (a timeout, a truncated body) is part of the tests, not an
    error: its request thread can outlive the test, and this process's stderr belongs to the next
    test by then (helpers.cli captures it). Any other error is still printed."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StoryServer:
    def __init__(self, folder: Path, latency: float = 0.0, stall: float = 3.0, redirect_to: str = ""):
        self.folder, self.latency, self.stall, self.redirect_to = Path(folder), latency, stall, redirect_to
        self.requests: Counter[str] = Counter()
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd = _QuietOnHangUp(("127.0.0.1", 0), self._handler())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def inject(self, path: str, *faults: str) -> None:
        """The next requests of `path` get these faults, in order; later ones are served normally."""
        assert all(f in FAULTS for f in faults), faults
        self._faults[path.lstrip("/")].extend(faults)

    def next_fault(self, path: str) -> str | None:
        with self._lock:
            self.requests[path] += 1
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def __enter__(self) -> "StoryServer":
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                path = self.path.split("?")[0].lstrip("/")
                fault = server.next_fault(path)
                time.sleep(server.latency)
                file = server.folder / path
                if fault == "timeout":
                    time.sleep(server.stall)
                if fault in ("wait_an_hour", "dribble", "huge", "redirect"):
                    return getattr(self, f"_{fault}")(path)
                if fault in ("500", "429", "404") or not file.is_file():
                    return self._status(int(fault) if fault in ("500", "429", "404") else 404)
                body = b"<html>busy</html>" if fault == "garbage" else file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(file.read_bytes()) if fault == "truncate" else len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if fault == "truncate" else body)
                if fault == "truncate":
                    self.close_connection = True

            def _wait_an_hour(self, _path):
                self.send_response(429)
                self.send_header("Retry-After", "3600")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _dribble(self, _path):
                """Headers at once, then one byte of a long body every 0.2 s (for up to a minute)."""
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(300):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.2)

            def _huge(self, _path):
                """A valid JSON list of 8 MB, sent without Content-Length (chunked-like: until close)."""
                self.send_response(200)
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.write(b"[" + b"0," * (4 << 20) + b"0]")
                except OSError:
                    pass

            def _redirect(self, path):
                self.send_response(302)
                self.send_header("Location", server.redirect_to + path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _status(self, code: int):
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler


def serve_demo_stories(folder: Path, replace: tuple[str, str] = ("", "")) -> Path:
    """The demo's stories laid out like ArknightsStoryJson under `folder`, optionally with one phrase
    changed (an upstream edit)."""
    demo = Path(__file__).resolve().parent.parent / "recipes" / "demo"
    for story, name in DEMO_STORIES.items():
        target = folder / f"zh_CN/gamedata/story/{story}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (demo / name).read_text(encoding="utf-8")
        target.write_text(text.replace(*replace) if replace[0] else text, encoding="utf-8")
    return folder
