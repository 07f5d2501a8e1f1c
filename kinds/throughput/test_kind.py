"""The load generator of predict.py against the local service on 127.0.0.1. YOURS.

Every request of a burst is counted and timed, a failing request is counted as failed (not as
a fast one), and an unreachable target is an error row, not an exception.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest

PACKAGE = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmark.toml").read_text())["project"]["package"]
predict_module = importlib.import_module(f"{PACKAGE}.predict")
server_module = importlib.import_module(f"{PACKAGE}.local_server")
errors = importlib.import_module("bench_harness")
Params = importlib.import_module(f"{PACKAGE}.params").Params

ITEM = {"input_id": "t-1", "text": "the quick brown fox jumps over the lazy dog the end", "requests": 30}


def test_handle_is_deterministic_work() -> None:
    result = server_module.handle(ITEM["text"])
    assert result["words"] == 11 and result["top_word"] == "the"
    assert result == server_module.handle(ITEM["text"].upper())


@pytest.mark.parametrize("target", ["callable", "http"])
def test_a_burst_times_every_request(target: str) -> None:
    row = predict_module.predict(ITEM, Params(target=target, concurrency=4))
    assert row["error"] is None, row["error"]
    assert row["requests_total"] == row["requests_ok"] == 30 and row["requests_failed"] == 0
    assert len(row["request_latencies"]) == 30 and min(row["request_latencies"]) > 0
    assert row["requests_per_second"] == pytest.approx(30 / row["burst_seconds"])
    assert row["prediction"] == row["ground_truth"] == server_module.handle(ITEM["text"])["digest"]
    assert max(row["request_latencies"]) <= row["burst_seconds"]
    json.dumps(row)


def test_failed_requests_are_counted_not_timed_as_successes(monkeypatch: pytest.MonkeyPatch) -> None:
    with server_module.LocalService(fail_every=3) as service:
        client = predict_module.HttpClient(service.url, timeout=5.0)
        result = predict_module.burst(client, ITEM["text"], server_module.handle(ITEM["text"]), 30, 3)
    assert result["requests_failed"] == 10 and result["requests_ok"] == 20
    assert all("503" in message for message in result["failures"])


def test_an_unreachable_target_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    predict_module.target_url.cache_clear()
    monkeypatch.setenv("LOAD_TARGET_URL", "http://127.0.0.1:9/work")
    try:
        row = predict_module.predict(ITEM, Params(target="http", concurrency=2))
    finally:
        predict_module.target_url.cache_clear()
    assert row["error_type"] == errors.CONNECTION_ERROR and row["prediction"] is None
    assert row["requests_failed"] == 30, "what was measured is kept"
