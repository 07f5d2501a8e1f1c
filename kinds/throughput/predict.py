"""predict(): one burst of concurrent load of one configuration on one item. YOURS: edit freely.

An item is a burst: `requests` calls carrying the item's `text`, sent by `concurrency` threads to
the target: `service_work` called in-process (`callable`) or the same work behind HTTP (`http`:
LOAD_TARGET_URL, unset: the local service). `burst` (template-owned) keeps what a load test must
save: every request's latency (p50/p95/p99 over all requests, never averaged), the successes
and failures (a wrong answer is a failed request, not a fast one), the burst's wall time and
requests/s; the harness adds CPU and memory (run.log_system_params). A burst in which every
request failed raises, keeping what was measured.

Return the prediction and the raw output, or raise: the harness adds input_id, error and
error_type, and the segment fields. The target URL is part of the cache identity (CACHE_CONTEXT).
A cached burst is not measured again: run `make experiment ARGS=--no-cache` to re-measure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bench_harness import (
    INVALID_VALUE,
    MISSING_FIELD,
    BenchmarkError,
    HttpTarget,
    burst,
    burst_error_type,
    load_target_identity,
    load_target_url,
    service_work,
)

from .params import Params

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None
# What else the answers depend on (the target's URL): a different target, a different cache.
CACHE_CONTEXT = load_target_identity
# Columns that are measurements of time: they differ between two runs of the same burst.
TIMING_FIELDS = ("latency", "burst_seconds", "request_latencies", "requests_per_second")


def make_target(params: Params) -> Callable[[str], dict[str, Any]]:
    if params.target == "callable":
        return service_work
    if params.target == "http":
        return HttpTarget(load_target_url(), params.timeout_seconds)
    raise BenchmarkError(f"unknown target {params.target!r}: use callable or http", INVALID_VALUE)


def burst_spec(item: dict[str, Any]) -> tuple[str, int]:
    text = item.get("text")
    try:
        requests = int(item["requests"])  # a CSV cell arrives as text
    except (KeyError, TypeError, ValueError):
        requests = 0
    if not isinstance(text, str) or requests < 1:
        raise BenchmarkError("a burst needs a text and a positive integer number of requests", MISSING_FIELD)
    return text, requests


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Load the target with one burst; the prediction is the digest the service answered most often."""
    text, requests = burst_spec(item)
    expected = service_work(text)
    measured = burst(make_target(params), text, expected, requests, params.concurrency)
    failures, answer = measured.pop("failures"), measured.pop("answer")
    row = {
        "prediction": json.loads(answer)["digest"] if answer else None,
        # The most common answer, raw, and the failures by message: deterministic for a healthy service.
        "raw_response": json.dumps({"answer": answer, "failures": failures}, sort_keys=True),
        "ground_truth": expected["digest"],
        "latency": measured["burst_seconds"],
        **measured,
    }
    if measured["requests_ok"] == 0:
        raise BenchmarkError(
            f"every request failed: {failures}", burst_error_type(failures), **{**row, "prediction": None}
        )
    return row
