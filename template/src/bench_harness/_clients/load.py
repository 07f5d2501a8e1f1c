"""The throughput kind's load generator: bursts of concurrent calls, every request timed and checked.

Template-owned. `burst(call, text, expected, requests, concurrency)` sends `requests` calls with
`concurrency` threads and keeps what a load test must: every request's latency (percentiles are
computed over all requests, never averaged), successes and failures (a wrong answer is a failed
request, not a fast one) and the burst's wall time. `HttpTarget` is a keep-alive HTTP client (one
connection per thread, as a pooled client would use) for LOAD_TARGET_URL or the local service.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from .._core.errors import API_TIMEOUT, CONNECTION_ERROR, SERVER_ERROR, UNKNOWN, describe
from .._core.secrets import redact
from .load_server import LOCAL_SERVICE_IDENTITY, local_service_url


def target_url() -> str:
    """LOAD_TARGET_URL, else the local service (started once per process)."""
    return os.environ.get("LOAD_TARGET_URL") or local_service_url()


def target_identity() -> dict[str, str]:
    """What the answers depend on, for the cache identity: the target URL (the local service's version)."""
    url = os.environ.get("LOAD_TARGET_URL")
    if not url:
        return {"target": LOCAL_SERVICE_IDENTITY}
    parts = urlsplit(url.strip())
    return {"target": parts._replace(netloc=parts.netloc.rpartition("@")[2].lower()).geturl()}  # no user:password


class HttpTarget:
    """`POST {"text": ...}` to a URL, one keep-alive connection per thread; a non-200 raises."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout = urlsplit(url), timeout
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            factory = http.client.HTTPSConnection if self.url.scheme == "https" else http.client.HTTPConnection
            self.local.connection = factory(self.url.hostname, self.url.port, timeout=self.timeout)
        return self.local.connection

    def __call__(self, text: str) -> dict[str, Any]:
        connection = self._connection()
        body = json.dumps({"text": text})
        try:
            connection.request("POST", self.url.path or "/", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
        except Exception:
            connection.close()
            self.local.connection = None
            raise
        if response.status != 200:
            raise http.client.HTTPException(f"HTTP {response.status}")
        return json.loads(payload)


def burst(call: Callable[[str], Any], text: str, expected: Any, requests: int, concurrency: int) -> dict[str, Any]:
    """Send `requests` calls with `concurrency` threads; per-request latencies and outcomes."""
    expected_text = json.dumps(expected, sort_keys=True)

    def one(_: int) -> tuple[float, str | None, str | None]:
        started = time.perf_counter()
        answer = failure = None
        try:
            answer = json.dumps(call(text), sort_keys=True)
            failure = None if answer == expected_text else "WRONG_ANSWER"
        except Exception as exc:  # noqa: BLE001 - a failed request is a measurement, not a crash
            failure = redact(describe(exc))
        return time.perf_counter() - started, failure, answer

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        outcomes = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    failures = Counter(failure for _, failure, _ in outcomes if failure)
    answers = Counter(answer for _, _, answer in outcomes if answer is not None)
    ok = requests - sum(failures.values())
    return {
        "burst_seconds": seconds,
        "requests_total": requests,
        "requests_ok": ok,
        "requests_failed": requests - ok,
        "requests_per_second": ok / seconds if seconds > 0 else None,
        "request_latencies": [round(latency, 7) for latency, _, _ in outcomes],
        "failures": dict(failures),
        "answer": answers.most_common(1)[0][0] if answers else None,
    }


def failure_category(failures: dict[str, int]) -> str:
    """The error category of the most common failure message (a burst in which every request failed)."""
    message = max(failures, key=lambda m: failures[m]) if failures else ""
    if "Connection" in message or "refused" in message:
        return CONNECTION_ERROR
    if "timed out" in message or "Timeout" in message:
        return API_TIMEOUT
    if "HTTP 5" in message:
        return SERVER_ERROR
    return UNKNOWN
