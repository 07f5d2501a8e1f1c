"""predict() and the harness's chat client against a fake OpenAI-compatible server on 127.0.0.1. YOURS.

The server (bench_harness's LocalLLMServer) answers deterministically and injects the failures a
real endpoint has: rate limits with Retry-After, 5xx, timeouts, non-JSON bodies and a wrong key.
predict() returns the row's outputs or raises a BenchmarkError of the right category (the harness
records it and retries the transient ones). The key set here must reach the server and never a
result or a message, even when the server echoes it back.
"""

from __future__ import annotations

import importlib
import json
import tomllib
from pathlib import Path

import pytest

from bench_harness import (
    API_TIMEOUT,
    CLIENT_ERROR,
    CONNECTION_ERROR,
    PARSE_ERROR,
    RATE_LIMIT,
    SERVER_ERROR,
    BenchmarkError,
    LocalLLMServer,
    is_transient,
)

PACKAGE = tomllib.loads((Path(__file__).resolve().parents[1] / "benchmark.toml").read_text())["project"]["package"]
predict_module = importlib.import_module(f"{PACKAGE}.predict")
load_items = importlib.import_module(f"{PACKAGE}.data").load_items
grid = importlib.import_module(f"{PACKAGE}.params").grid

SECRET = "sk-test-do-not-store-0123456789"


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    """serve(faults=..., **options) -> a started fake server that predict() now talks to, with SECRET."""
    started = []

    def start(faults: tuple[str, ...] = (), **options):
        answers = {item["question"]: item["answer"] for item in load_items()}
        server = LocalLLMServer(answers, faults=faults, expected_key=SECRET, echo_key=True, **options).start()
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


def failure(item: dict) -> BenchmarkError:
    with pytest.raises(BenchmarkError) as caught:
        predict_module.predict(item, grid()[0])
    assert SECRET not in str(caught.value) and SECRET.lower() not in str(caught.value).lower()
    return caught.value


def test_a_completion_keeps_raw_response_tokens_cost_and_never_the_key(serve, item: dict) -> None:
    server = serve()
    row = predict_module.predict(item, grid()[0])
    assert server.authorized == 1, "the key must be sent as a bearer token"
    assert row["raw_response"] and row["finish_reason"] == "stop" and row["prediction"]
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["total_tokens"] == row["prompt_tokens"] + row["completion_tokens"]
    prices = row["price_input_per_mtok"], row["price_output_per_mtok"]
    expected = (row["prompt_tokens"] * prices[0] + row["completion_tokens"] * prices[1]) / 1e6
    assert row["cost_usd"] == pytest.approx(expected) and row["cost_usd"] > 0
    assert row["pricing_digest"] and row["model_version"] and row["latency"] > 0
    assert SECRET not in json.dumps(row)


def test_a_rate_limit_carries_the_servers_retry_after(serve, item: dict) -> None:
    serve(faults=("rate_limit",), retry_after=0.2)
    error = failure(item)
    assert error.error_type == RATE_LIMIT and error.retry_after == pytest.approx(0.2)


def test_server_errors_and_timeouts_are_transient(serve, item: dict, monkeypatch) -> None:
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "0.3")
    serve(faults=("server_error", "timeout"), delay_seconds=1.0)
    assert failure(item).error_type == SERVER_ERROR
    assert failure(item).error_type == API_TIMEOUT
    assert is_transient(SERVER_ERROR) and is_transient(API_TIMEOUT)


def test_permanent_failures_are_not_transient(serve, item: dict, monkeypatch) -> None:
    serve(faults=("bad_json",))
    assert failure(item).error_type == PARSE_ERROR
    monkeypatch.setenv("LLM_API_KEY", "sk-wrong-key-0000")
    error = failure(item)
    assert error.error_type == CLIENT_ERROR and "401" in str(error) and not is_transient(error.error_type)
    assert "sk-wrong-key-0000" not in str(error)


def test_an_unreachable_endpoint_is_a_connection_error(item: dict, monkeypatch) -> None:
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert failure(item).error_type == CONNECTION_ERROR


def test_the_endpoint_is_part_of_the_cache_identity(monkeypatch) -> None:
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    stand_in = predict_module.CACHE_CONTEXT()
    monkeypatch.setenv("LLM_BASE_URL", "https://api.example.com/v1")
    assert predict_module.CACHE_CONTEXT() != stand_in
    json.dumps(predict_module.CACHE_CONTEXT())


def test_the_system_prompt_hash_parameter_names_a_known_prompt() -> None:
    for params in grid():
        assert params.system_prompt_hash in predict_module.PROMPTS_BY_HASH
