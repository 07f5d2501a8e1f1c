"""The real HTTP client of predict.py against a fake OpenAI-compatible server on 127.0.0.1. YOURS.

The server (local_server.py) answers deterministically and injects the failures a real endpoint
has: rate limits with Retry-After, 5xx, timeouts, non-JSON bodies and a wrong key. The key set
here must reach the server and never a result row.
"""

from __future__ import annotations

import importlib
import json
import time
import tomllib
from pathlib import Path

import pytest

PACKAGE = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmark.toml").read_text())["project"]["package"]
predict_module = importlib.import_module(f"{PACKAGE}.predict")
server_module = importlib.import_module(f"{PACKAGE}.local_server")
executors = importlib.import_module("bench_harness._run.executors")
errors = importlib.import_module("bench_harness._core.errors")
load_items = importlib.import_module(f"{PACKAGE}.data").load_items
grid = importlib.import_module(f"{PACKAGE}.params").grid

SECRET = "sk-test-do-not-store-0123456789"


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    """serve(faults=..., **options) -> a started fake server that predict() now talks to."""
    started = []

    def start(faults: tuple[str, ...] = (), **options):
        answers = {item["question"]: item["answer"] for item in load_items()}
        server = server_module.LocalLLMServer(answers, faults=faults, expected_key=SECRET, **options).start()
        started.append(server)
        monkeypatch.setenv("LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("LLM_API_KEY", SECRET)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def item() -> dict:
    return load_items(limit=1)[0]


def test_a_completion_keeps_raw_response_tokens_cost_and_never_the_key(serve, item: dict) -> None:
    server = serve()
    row = predict_module.predict(item, grid()[0])
    assert row["error"] is None, row["error"]
    assert server.authorized == 1, "the key must be sent as a bearer token"
    assert row["raw_response"] and row["finish_reason"] == "stop"
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    prices = row["price_input_per_mtok"], row["price_output_per_mtok"]
    expected = (row["prompt_tokens"] * prices[0] + row["completion_tokens"] * prices[1]) / 1e6
    assert row["cost_usd"] == pytest.approx(expected) and row["cost_usd"] > 0
    assert row["pricing_digest"] and row["model_version"]
    assert SECRET not in json.dumps(row)


def test_a_rate_limit_is_retried_after_the_servers_retry_after(serve, item: dict) -> None:
    serve(faults=("rate_limit", "rate_limit"), retry_after=0.2)
    first = predict_module.predict(item, grid()[0])
    assert first["error_type"] == errors.RATE_LIMIT and first["retry_after"] == pytest.approx(0.2)
    policy = executors.RetryPolicy(max_retries=3, base_seconds=5.0, max_seconds=30.0)
    task = executors.Task(0, item, grid()[0])
    started = time.perf_counter()
    _, row = executors.execute_task(predict_module.predict, task, policy)
    waited = time.perf_counter() - started
    assert row["error"] is None and row["retry_count"] == 1
    assert 0.2 <= waited < 5.0, "waited Retry-After, not the 5 s backoff"


def test_server_errors_and_timeouts_are_transient_and_retried(serve, item: dict, monkeypatch) -> None:
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "0.3")
    serve(faults=("server_error", "timeout"), delay_seconds=1.0)
    assert predict_module.predict(item, grid()[0])["error_type"] == errors.SERVER_ERROR
    assert predict_module.predict(item, grid()[0])["error_type"] == errors.API_TIMEOUT
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "1.5")  # the final, healthy attempt may be slow on a busy machine
    serve(faults=("server_error", "timeout"), delay_seconds=4.0)
    policy = executors.RetryPolicy(max_retries=3, base_seconds=0.01, max_seconds=0.05)
    _, row = executors.execute_task(predict_module.predict, executors.Task(0, item, grid()[0]), policy)
    assert row["error"] is None and row["retry_count"] == 2


def test_permanent_failures_are_error_rows_not_retried(serve, item: dict, monkeypatch) -> None:
    serve(faults=("bad_json",))
    assert predict_module.predict(item, grid()[0])["error_type"] == errors.PARSE_ERROR
    monkeypatch.setenv("LLM_API_KEY", "sk-wrong")
    row = predict_module.predict(item, grid()[0])
    assert row["error_type"] == errors.CLIENT_ERROR and "401" in row["error"]
    assert not errors.is_transient(row["error_type"])
    assert SECRET not in json.dumps(row) and "sk-wrong" not in json.dumps(row)


def test_an_unreachable_endpoint_is_a_connection_error(item: dict, monkeypatch) -> None:
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    row = predict_module.predict(item, grid()[0])
    assert row["error_type"] == errors.CONNECTION_ERROR and row["prediction"] is None


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert predict_module.retry_after_seconds("2") == 2.0
    assert predict_module.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert predict_module.retry_after_seconds(None) is None


def test_the_system_prompt_hash_parameter_names_a_known_prompt() -> None:
    for params in grid():
        assert params.system_prompt_hash in predict_module.PROMPTS_BY_HASH
