"""A real HTTP server on 127.0.0.1 that serves a folder laid out like ArknightsStoryJson
(`{server}/gamedata/story/….json`), with faults to inject per path, for download tests and
bench/download.py.

    with StoryServer(folder, latency=0.1) as server:
        server.inject("zh_CN/gamedata/story/a.json", "500", "429", "truncate")
        ... server.base_url ... server.requests
"""

import threading
import time
from collections import Counter, defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("500", "429", "404", "timeout", "truncate", "garbage")


class StoryServer:
    def __init__(self, folder: Path, latency: float = 0.0, stall: float = 3.0):
        self.folder, self.latency, self.stall = Path(folder), latency, stall
        self.requests: Counter[str] = Counter()
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True

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

            def _status(self, code: int):
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
