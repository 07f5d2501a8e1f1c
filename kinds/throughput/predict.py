"""predict(): one burst of concurrent load of one configuration on one item. YOURS: edit freely.

An item is a burst: `requests` calls carrying the item's `text`, sent by `concurrency` threads to
the target, a Python callable or an HTTP endpoint. The row keeps what a load test must save:
every request's latency (so p50/p95/p99 are computed over all requests, not averaged), the
successes and failures, the burst's wall time and requests/s; the harness adds CPU and memory
(run.log_system_params). Each response is checked against the expected result: a wrong answer
is a failed request, not a fast one. A burst in which every request failed is an error row.

    LOAD_TARGET_URL   the HTTP endpoint to load (unset: the local service in local_server.py)

The guide's contract holds: stateless, never raises for a bad item, latency measured inside.
A cached burst is not measured again: run `make experiment ARGS=--no-cache` to re-measure.
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
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from bench_harness import (
    API_TIMEOUT,
    CONNECTION_ERROR,
    INVALID_VALUE,
    MISSING_FIELD,
    SERVER_ERROR,
    UNKNOWN,
    BenchmarkError,
    classify_exception,
    describe,
)
from bench_harness import segment_fields
from .local_server import LocalService, handle
from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None
# Columns that are measurements of time: they differ between two runs of the same burst.
TIMING_FIELDS = ("latency", "burst_seconds", "request_latencies", "requests_per_second")


_START = threading.Lock()


@lru_cache(maxsize=1)
def target_url() -> str:
    """LOAD_TARGET_URL, else the local service, started once per process."""
    return os.environ.get("LOAD_TARGET_URL") or LocalService().start().url


def locked_target_url() -> str:
    """target_url() for concurrent callers (the threads executor): one service, not one per thread."""
    with _START:
        return target_url()


class HttpClient:
    """One keep-alive connection per thread, as a pooled HTTP client would use."""

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


def make_target(params: Params) -> Callable[[str], dict[str, Any]]:
    if params.target == "callable":
        return handle
    if params.target == "http":
        return HttpClient(locked_target_url(), params.timeout_seconds)
    raise BenchmarkError(f"unknown target {params.target!r}: use callable or http", INVALID_VALUE)


def burst(call: Callable[[str], dict[str, Any]], text: str, expected: dict, requests: int, concurrency: int) -> dict:
    """Send `requests` calls with `concurrency` threads; per-request latencies and outcomes."""

    def one(_: int) -> tuple[float, str | None, str | None]:
        started = time.perf_counter()
        answer = failure = None
        try:
            answer = json.dumps(call(text), sort_keys=True)
            failure = None if answer == expected_text else "WRONG_ANSWER"
        except Exception as exc:  # noqa: BLE001 - a failed request is a measurement, not a crash
            failure = describe(exc)
        return time.perf_counter() - started, failure, answer

    expected_text = json.dumps(expected, sort_keys=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        outcomes = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    failures = Counter(failure for _, failure, _ in outcomes if failure)
    answers = Counter(answer for _, _, answer in outcomes if answer is not None)
    return {
        "burst_seconds": seconds,
        "requests_total": requests,
        "requests_ok": requests - sum(failures.values()),
        "requests_failed": sum(failures.values()),
        "request_latencies": [round(latency, 7) for latency, _, _ in outcomes],
        "failures": dict(failures),
        "answer": answers.most_common(1)[0][0] if answers else None,
    }


def burst_spec(item: dict[str, Any]) -> tuple[str, int]:
    if "_malformed" in item:
        raise BenchmarkError(item["_malformed"], INVALID_VALUE)
    text = item.get("text")
    try:
        requests = int(item["requests"])  # a CSV cell arrives as text
    except (KeyError, TypeError, ValueError):
        requests = 0
    if not isinstance(text, str) or requests < 1:
        raise BenchmarkError("a burst needs a text and a positive integer number of requests", MISSING_FIELD)
    return text, requests


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Load the target with one burst; every failure becomes an error row that keeps what was measured."""
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": None,
        "latency": None,
        "error": None,
        "error_type": None,
        **segment_fields(item, params=params),
    }
    try:
        text, requests = burst_spec(item)
        expected = handle(text)
        row["ground_truth"] = expected["digest"]
        result = burst(make_target(params), text, expected, requests, params.concurrency)
        failures, answer = result.pop("failures"), result.pop("answer")
        row.update(result)
        row["latency"] = result["burst_seconds"]
        row["requests_per_second"] = result["requests_ok"] / result["burst_seconds"]
        # The service's most common answer, raw, and the failures by message: deterministic for a
        # healthy service (the timings live in their own columns, listed in TIMING_FIELDS).
        row["raw_response"] = json.dumps({"answer": answer, "failures": failures}, sort_keys=True)
        row["prediction"] = json.loads(answer)["digest"] if answer else None
        if result["requests_ok"] == 0:
            raise BenchmarkError(f"every request failed: {failures}", _category(failures))
    except Exception as exc:  # noqa: BLE001 - errors are data: record them, never stop the run
        row["error"] = describe(exc)
        row["error_type"] = classify_exception(exc)
        row["prediction"] = None
    return row


def _category(failures: Counter | dict) -> str:
    """The error category of the most common failure message."""
    message = max(failures, key=failures.get) if failures else ""
    if "Connection" in message or "refused" in message:
        return CONNECTION_ERROR
    if "timed out" in message or "Timeout" in message:
        return API_TIMEOUT
    if "HTTP 5" in message:
        return SERVER_ERROR
    return UNKNOWN
