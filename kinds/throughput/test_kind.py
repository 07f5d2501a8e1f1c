"""The load generator of predict.py against the local service on 127.0.0.1. YOURS.

Every request of a burst is counted and timed, a failing request is counted as failed (not as
a fast one), and an unreachable target raises a BenchmarkError that keeps what was measured.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest

from bench_harness import CONNECTION_ERROR, BenchmarkError, HttpTarget, LocalService, burst, service_work

PACKAGE = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmark.toml").read_text())["project"]["package"]
predict_module = importlib.import_module(f"{PACKAGE}.predict")
Params = importlib.import_module(f"{PACKAGE}.params").Params

ITEM = {"input_id": "t-1", "text": "the quick brown fox jumps over the lazy dog the end", "requests": 30}


def test_the_work_is_deterministic() -> None:
    result = service_work(ITEM["text"])
    assert result["words"] == 11 and result["top_word"] == "the"
    assert result == service_work(ITEM["text"].upper())


@pytest.mark.parametrize("target", ["callable", "http"])
def test_a_burst_times_every_request(target: str) -> None:
    row = predict_module.predict(ITEM, Params(target=target, concurrency=4))
    assert row["requests_total"] == row["requests_ok"] == 30 and row["requests_failed"] == 0
    assert len(row["request_latencies"]) == 30 and min(row["request_latencies"]) > 0
    assert row["requests_per_second"] == pytest.approx(30 / row["burst_seconds"])
    assert row["prediction"] == row["ground_truth"] == service_work(ITEM["text"])["digest"]
    assert max(row["request_latencies"]) <= row["burst_seconds"]
    json.dumps(row)


def test_failed_requests_are_counted_not_timed_as_successes() -> None:
    with LocalService(fail_every=3) as service:
        result = burst(HttpTarget(service.url, timeout=5.0), ITEM["text"], service_work(ITEM["text"]), 30, 3)
    assert result["requests_failed"] == 10 and result["requests_ok"] == 20
    assert all("503" in message for message in result["failures"])


def test_an_unreachable_target_raises_and_keeps_the_measurements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOAD_TARGET_URL", "http://127.0.0.1:9/work")
    with pytest.raises(BenchmarkError) as caught:
        predict_module.predict(ITEM, Params(target="http", concurrency=2))
    assert caught.value.error_type == CONNECTION_ERROR
    assert caught.value.extras["requests_failed"] == 30, "what was measured is kept"
    assert caught.value.extras["prediction"] is None


def test_the_target_is_part_of_the_cache_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOAD_TARGET_URL", raising=False)
    local = predict_module.CACHE_CONTEXT()
    monkeypatch.setenv("LOAD_TARGET_URL", "http://127.0.0.1:9/work")
    assert predict_module.CACHE_CONTEXT() != local
