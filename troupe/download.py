"""Bounded, concurrent, resumable downloads into a cache that never holds a bad file.

    report = fetch_all([Fetch(url, dest, label)], validate=parse_json, policy=RetryPolicy(attempts=5))

A server is untrusted (SECURITY.md), so every download is bounded:
- one retry layer, here (requests' own retries are off): a file costs at most `attempts` requests.
  Connection errors, timeouts, 429 and 5xx are retried with exponential backoff, honouring
  Retry-After up to `max_retry_after` seconds — a server asking for longer fails the file at once,
  saying so; any other status fails at once;
- a per-file `deadline` over all its attempts, checked between reads of the body, so a body
  dribbled a byte at a time is cut off; `timeout` bounds connecting and each silence;
- `max_bytes`, declared (Content-Length) or counted while streaming;
- redirects are followed only within the same origin (scheme, host and port): a mirror cannot
  send troupe to another host, nor from https to http;
- the body must pass `validate` (e.g. parse as JSON) before it is written, atomically.
Workers are daemon threads that check a stop flag between reads: Ctrl-C returns within about a
second (nothing waits for a stalled socket), and the cache keeps only whole files. Files already in
the cache are not requested again.
"""

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from tqdm import tqdm

from troupe.files import atomic_write_bytes

RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 1 << 16


@dataclass(frozen=True)
class Fetch:
    url: str
    dest: Path
    label: str  # what the user wrote (a link and its line), for messages


@dataclass
class FetchReport:
    downloaded: list[Fetch] = field(default_factory=list)
    cached: list[Fetch] = field(default_factory=list)
    failed: list[tuple[Fetch, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"downloaded {len(self.downloaded)}, cached {len(self.cached)}, failed {len(self.failed)}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # requests per file, at most
    backoff: float = 0.5  # seconds before the second attempt, doubled each time
    timeout: tuple[float, float] = (10.0, 60.0)  # connecting; the longest silence while waiting or reading
    deadline: float = 300.0  # seconds per file, all attempts together
    max_retry_after: float = 60.0
    max_bytes: int = 64_000_000
    max_redirects: int = 5


class Refused(Exception):
    """A failure another attempt cannot fix: a 4xx, a body too large, a redirect to another origin,
    a Retry-After too long, the deadline passed."""


class Again(Exception):
    """A failure worth another attempt, with the wait the server asked for (Retry-After), if any."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


TRANSIENT = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def retry_after(response, policy: RetryPolicy) -> float | None:
    """The wait a 429/5xx asks for (urllib3 parses both header forms), refused past the cap."""
    header = response.headers.get("Retry-After")
    if header is None:
        return None
    try:
        wait = urllib3.util.Retry().parse_retry_after(header)
    except urllib3.exceptions.InvalidHeader:
        return None
    if wait > policy.max_retry_after:
        raise Refused(
            f"HTTP {response.status_code} with Retry-After: {header} (over the {policy.max_retry_after:g} s "
            "this download waits); try again later"
        )
    return wait


class Requester:
    """HTTP requests within a RetryPolicy's bounds; one requests.Session per thread."""

    def __init__(self, policy: RetryPolicy, stop: threading.Event | None = None):
        self.policy, self.stop, self._local = policy, stop or threading.Event(), threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["User-Agent"] = "troupe"
        return self._local.session

    def call(self, method: str, url: str, validate: Callable[[bytes], object], **kwargs) -> tuple[object, bytes]:
        """(validated body, raw body), after at most `attempts` requests within the deadline; a
        RuntimeError with the reason otherwise."""
        deadline = time.monotonic() + self.policy.deadline
        for attempt in range(1, self.policy.attempts + 1):
            try:
                body = self._attempt(method, url, deadline, **kwargs)
                return validate(body), body
            except Refused as refused:
                raise RuntimeError(f"{refused}: {url}") from None
            except (Again, ValueError, *TRANSIENT) as failure:
                reason, wait = _why(failure), getattr(failure, "wait", None)
            delay = wait if wait is not None else self.policy.backoff * 2 ** (attempt - 1)
            if attempt == self.policy.attempts or time.monotonic() + delay > deadline:
                break
            if self.stop.wait(delay):
                raise KeyboardInterrupt
        raise RuntimeError(f"{reason} after {attempt} attempt(s): {url}")

    def _attempt(self, method: str, url: str, deadline: float, **kwargs) -> bytes:
        """One request, following same-origin redirects: the body, or Again / Refused."""
        for _ in range(self.policy.max_redirects + 1):
            response = self.session().request(
                method, url, timeout=self.policy.timeout, stream=True, allow_redirects=False, **kwargs
            )
            with response:
                if not response.is_redirect:
                    self._check_status(response)
                    return self._read(response, deadline)
                target = urljoin(url, response.headers["Location"])
                if not same_origin(url, target):
                    raise Refused(f"redirect to another origin refused ({target})")
                url = target
        raise Refused(f"more than {self.policy.max_redirects} redirects")

    def _check_status(self, response) -> None:
        if response.status_code == 200:
            return
        if response.status_code in RETRY_STATUSES:
            raise Again(f"HTTP {response.status_code}", retry_after(response, self.policy))
        raise Refused(f"HTTP {response.status_code}")

    def _read(self, response, deadline: float) -> bytes:
        """The body, a chunk at a time as it arrives, within the deadline and the size cap."""
        cap = self.policy.max_bytes
        if int(response.headers.get("Content-Length") or 0) > cap:
            raise Refused(f"the body is {response.headers['Content-Length']} bytes, more than {cap} bytes")
        chunks, size = [], 0
        while chunk := response.raw.read1(CHUNK, decode_content=True):
            size += len(chunk)
            if size > cap:
                raise Refused(f"the body is more than {cap} bytes")
            if time.monotonic() > deadline:
                raise Refused(f"not done within the {self.policy.deadline:g} s deadline")
            if self.stop.is_set():
                raise KeyboardInterrupt
            chunks.append(chunk)
        return b"".join(chunks)


def _why(failure: Exception) -> str:
    if isinstance(failure, ValueError):
        return f"invalid body ({failure})"
    return str(failure) if isinstance(failure, Again) else f"{type(failure).__name__}: {failure}"


def download(requester: Requester, item: Fetch, validate: Callable[[bytes], object]) -> None:
    """Download, validate and atomically store one file; RuntimeError with the reason."""
    for leftover in item.dest.parent.glob(f".{item.dest.name}.*.tmp"):  # from a run that was killed
        leftover.unlink(missing_ok=True)
    _, body = requester.call("GET", item.url, validate)
    atomic_write_bytes(item.dest, body)


def fetch_all(
    items: list[Fetch],
    validate: Callable[[bytes], object],
    workers: int = 8,
    policy: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> FetchReport:
    """Fetch what is not cached yet with `workers` daemon threads; failures are reported, not raised.
    Ctrl-C (KeyboardInterrupt) stops the workers and is raised at once."""
    report = FetchReport(cached=[i for i in items if i.dest.is_file()])
    todo, done = queue.SimpleQueue(), queue.SimpleQueue()
    for item in (i for i in items if not i.dest.is_file()):
        todo.put(item)
    count, requester = todo.qsize(), Requester(policy)
    for _ in range(min(max(1, workers), count)):
        threading.Thread(target=_worker, args=(todo, done, requester, validate), daemon=True).start()
    with tqdm(total=count, desc="download", unit="file", disable=not progress or not count) as bar:
        try:
            for _ in range(count):
                item, failure = _next(done)
                report.failed.append((item, failure)) if failure else report.downloaded.append(item)
                bar.update()
        except KeyboardInterrupt:
            requester.stop.set()
            raise
    return report


def _worker(todo, done, requester: Requester, validate) -> None:
    while not requester.stop.is_set():
        try:
            item = todo.get_nowait()
        except queue.Empty:
            return
        try:
            download(requester, item, validate)
            done.put((item, None))
        except RuntimeError as exc:
            done.put((item, str(exc)))
        except KeyboardInterrupt:
            return


def _next(done):
    """The next finished download; waits in short steps so Ctrl-C is seen at once."""
    while True:
        try:
            return done.get(timeout=0.2)
        except queue.Empty:
            continue
