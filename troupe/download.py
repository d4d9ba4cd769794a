"""Concurrent, resumable downloads into a cache that never holds a bad file.

    report = fetch_all([Fetch(url, dest, label)], validate=parse_json)

requests + urllib3's Retry do the transport: timeouts, retries with exponential backoff on
connection errors, 429 and 5xx, honouring Retry-After. On top of that, a body must pass
`validate` (e.g. parse as JSON) before it is written — atomically — so a truncated or garbled
response is retried, never cached. Files already in the cache are not requested again.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from troupe.files import atomic_write_bytes

RETRY_STATUSES = (429, 500, 502, 503, 504)


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
    attempts: int = 5  # per file, for transport errors and for bodies that fail validation
    backoff: float = 0.5  # seconds, doubled each retry
    timeout: tuple[float, float] = (10.0, 60.0)  # connect, read
    max_retry_after: float = 60.0


def make_session(policy: RetryPolicy, methods: tuple[str, ...] = ("GET",)) -> requests.Session:
    """A session whose requests retry with backoff on connection errors, timeouts, 429 and 5xx."""
    retry = Retry(
        total=policy.attempts,
        connect=policy.attempts,
        read=policy.attempts,
        status=policy.attempts,
        backoff_factor=policy.backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=list(methods),
        backoff_max=policy.max_retry_after,
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = "troupe story downloader"
    return session


class Downloader:
    """One session per worker thread (requests sessions are not thread-safe)."""

    def __init__(self, validate: Callable[[bytes], object], policy: RetryPolicy):
        self.validate, self.policy, self._local = validate, policy, threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = make_session(self.policy)
        return self._local.session

    def fetch(self, item: Fetch) -> None:
        """Download, validate and atomically store one file; raise RuntimeError with the reason."""
        for leftover in item.dest.parent.glob(f".{item.dest.name}.*.tmp"):  # from a run that was killed
            leftover.unlink(missing_ok=True)
        reason = "no attempt made"
        for attempt in range(self.policy.attempts):
            if attempt:
                time.sleep(self.policy.backoff * 2 ** (attempt - 1))
            try:
                response = self.session().get(item.url, timeout=self.policy.timeout)
            except requests.RequestException as exc:  # retries inside urllib3 are already spent
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code} for {item.url}")
            try:
                self.validate(response.content)
            except ValueError as exc:
                reason = f"invalid body ({exc})"
                continue
            atomic_write_bytes(item.dest, response.content)
            return
        raise RuntimeError(f"{reason} after {self.policy.attempts} attempts: {item.url}")


def fetch_all(
    items: list[Fetch],
    validate: Callable[[bytes], object],
    workers: int = 8,
    policy: RetryPolicy = RetryPolicy(),
    progress: bool = True,
) -> FetchReport:
    """Fetch what is not cached yet with a bounded thread pool; nothing raises, failures are reported."""
    report = FetchReport(cached=[i for i in items if i.dest.is_file()])
    todo = [i for i in items if not i.dest.is_file()]
    downloader = Downloader(validate, policy)
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(todo), desc="download", unit="file", disable=not progress or not todo) as bar,
    ):
        futures = {pool.submit(downloader.fetch, item): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            try:
                future.result()
                report.downloaded.append(item)
            except RuntimeError as exc:
                report.failed.append((item, str(exc)))
            bar.update()
    return report
