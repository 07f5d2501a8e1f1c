"""The harness's clients, in-process against the local stand-ins on 127.0.0.1: no render.

The OpenAI-compatible chat client (bench_harness/_clients/openai_chat.py, on the `openai` package):
usage and cost, every error category, Retry-After, no retries of its own, connection reuse, the key
in no message in any form; secrets redaction (_core/secrets.py); the stand-in servers; and the
endpoint as part of the cache identity (issue 14, row 4).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import tomllib
import traceback
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import toy

ROOT = Path(__file__).resolve().parents[1]
LLM_KIND = ROOT / "kinds" / "llm"
# A key with characters that JSON and URLs escape: each form differs from the key itself.
KEY = "sk-plant/3f9c+1e7a-NeverStore-me0123"
QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": f"Question: {QUESTION}"}]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """bench_harness from template/src, pointed at a folder holding the llm kind's pricing.toml."""
    (tmp_path / "pricing.toml").write_bytes((LLM_KIND / "pricing.toml").read_bytes())
    monkeypatch.setenv("BENCH_ROOT", str(tmp_path))
    for name in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_TIMEOUT_SECONDS", "LOAD_TARGET_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(toy.HARNESS_SRC))
    toy.forget_modules()
    import bench_harness

    yield bench_harness
    toy.forget_modules()


@pytest.fixture
def chat(harness):
    """The modules under test: openai_chat, llm_server, secrets, errors."""
    from bench_harness._clients import llm_server, openai_chat
    from bench_harness._core import errors, secrets

    return type("Chat", (), {"client": openai_chat, "server": llm_server, "secrets": secrets, "errors": errors})


@pytest.fixture
def serve(chat):
    """serve(**options) -> a started stand-in (answer book: one question), stopped after the test."""
    started = []

    def start(**options: Any):
        server = chat.server.LocalLLMServer({QUESTION: "Paris"}, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def client_for(chat, server, key: str | None = None, timeout: float = 5.0):
    return chat.client.ChatClient(chat.client.Endpoint(server.base_url, key, timeout))


def executable(predict: Any) -> Any:
    """What executors.execute_task takes: predict itself today, its row envelope once _run/envelope.py exists."""
    try:
        from bench_harness._run.envelope import Envelope
    except ImportError:
        return predict
    return Envelope(predict)


def failure_of(call) -> Any:
    from bench_harness import BenchmarkError

    with pytest.raises(BenchmarkError) as caught:
        call()
    return caught.value


# -- a normal answer ----------------------------------------------------------------------------------


def test_a_completion_has_the_answer_usage_model_version_and_cost(chat, serve) -> None:
    server = serve()
    answer = client_for(chat, server).complete("local-large", MESSAGES, temperature=0.0, max_tokens=64)
    assert answer["raw_response"] == "The answer is Paris." and answer["finish_reason"] == "stop"
    assert answer["model_version"] == f"local-large-{chat.server.MODEL_VERSION}"
    prompt_tokens = chat.server.count_tokens(MESSAGES[0]["content"])
    completion_tokens = chat.server.count_tokens("The answer is Paris.")
    assert (answer["prompt_tokens"], answer["completion_tokens"]) == (prompt_tokens, completion_tokens)
    assert answer["total_tokens"] == prompt_tokens + completion_tokens
    prices = tomllib.loads((LLM_KIND / "pricing.toml").read_text())["models"]["local-large"]
    expected = (prompt_tokens * prices["input_per_mtok"] + completion_tokens * prices["output_per_mtok"]) / 1e6
    assert answer["cost_usd"] == pytest.approx(expected) and answer["cost_usd"] > 0
    assert answer["price_input_per_mtok"] == prices["input_per_mtok"] and len(answer["pricing_digest"]) == 12
    assert answer["latency"] > 0


def test_a_model_missing_from_pricing_has_no_cost(chat, serve) -> None:
    assert chat.client.price_row("gpt-unknown", 10, 5)["cost_usd"] is None
    assert chat.client.price_row("local-small", None, 5)["cost_usd"] is None


def test_a_length_cut_is_reported_as_finish_reason_length(chat, serve) -> None:
    answer = client_for(chat, serve()).complete("local-small", MESSAGES, max_tokens=2)
    assert answer["finish_reason"] == "length" and answer["completion_tokens"] == 2


# -- error categories ---------------------------------------------------------------------------------

FAULTS = {
    "rate_limit": "RATE_LIMIT",
    "server_error": "SERVER_ERROR",
    "status_500": "SERVER_ERROR",
    "status_502": "SERVER_ERROR",
    "status_504": "API_TIMEOUT",
    "status_408": "API_TIMEOUT",
    "status_400": "CLIENT_ERROR",
    "status_403": "CLIENT_ERROR",
    "status_422": "CLIENT_ERROR",
    "bad_json": "PARSE_ERROR",
}


@pytest.mark.parametrize(("fault", "category"), FAULTS.items())
def test_each_failure_has_its_category(chat, serve, fault: str, category: str) -> None:
    server = serve(faults=(fault,))
    error = failure_of(lambda: client_for(chat, server).complete("local-small", MESSAGES))
    assert error.error_type == category, str(error)
    assert chat.errors.is_transient(category) == (category in chat.errors.TRANSIENT)


def test_a_timeout_is_api_timeout(chat, serve) -> None:
    server = serve(faults=("timeout",), delay_seconds=1.0)
    error = failure_of(lambda: client_for(chat, server, timeout=0.2).complete("local-small", MESSAGES))
    assert error.error_type == "API_TIMEOUT" and "0.2s" in str(error)


def test_a_bad_key_and_an_unknown_model_are_client_errors(chat, serve) -> None:
    server = serve(expected_key=KEY)
    error = failure_of(lambda: client_for(chat, server, "sk-wrong-key-000000").complete("local-small", MESSAGES))
    assert error.error_type == "CLIENT_ERROR" and str(error).startswith("HTTP 401")
    error = failure_of(lambda: client_for(chat, server, KEY).complete("gpt-nonexistent", MESSAGES))
    assert error.error_type == "CLIENT_ERROR" and str(error).startswith("HTTP 404")
    assert server.authorized == 1


def test_an_unreachable_endpoint_is_a_connection_error(chat) -> None:
    endpoint = chat.client.Endpoint("http://127.0.0.1:9/v1", None, 2.0)
    error = failure_of(lambda: chat.client.ChatClient(endpoint).complete("local-small", MESSAGES))
    assert error.error_type == "CONNECTION_ERROR"


def test_the_sdk_does_not_retry_by_itself(chat, serve) -> None:
    """One call, one request, whatever the failure: the harness is the one that retries."""
    for fault in ("rate_limit", "server_error", "status_502", "status_408"):
        server = serve(faults=(fault, fault, fault))
        client = client_for(chat, server)
        failure_of(lambda client=client: client.complete("local-small", MESSAGES))
        assert server.requests == 1, fault
    assert client.sdk.max_retries == 0


# -- Retry-After ---------------------------------------------------------------------------------------


def test_retry_after_is_read_as_seconds_or_an_http_date(chat, serve) -> None:
    server = serve(faults=("rate_limit", "rate_limit_date"), retry_after=3)
    client = client_for(chat, server)
    assert failure_of(lambda: client.complete("local-small", MESSAGES)).retry_after == 3.0
    from_date = failure_of(lambda: client.complete("local-small", MESSAGES)).retry_after
    assert 0.0 < from_date <= 3.0  # an HTTP date has whole seconds: 2..3 s from now
    assert chat.client.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert chat.client.parse_retry_after("soon") is None
    assert chat.client.retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25


def test_the_harness_waits_the_servers_retry_after_not_its_backoff(chat, serve, monkeypatch) -> None:
    from bench_harness._run import executors

    server = serve(faults=("rate_limit", "rate_limit"), retry_after=0.2)
    monkeypatch.setenv("LLM_BASE_URL", server.base_url)

    def predict(item: dict, params: Any) -> dict:
        answer = chat.client.chat_completion("local-small", MESSAGES)
        return {"input_id": item["input_id"], "prediction": answer["raw_response"], "error": None, **answer}

    policy = executors.RetryPolicy(max_retries=3, base_seconds=5.0, max_seconds=30.0)
    started = time.perf_counter()
    _, row = executors.execute_task(executable(predict), executors.Task(0, {"input_id": "q1"}, None), policy)
    waited = time.perf_counter() - started
    assert not row.get("error") and row["retry_count"] == 2 and server.requests == 3
    assert 0.4 <= waited < 5.0, "waited Retry-After twice, not the 5 s backoff"


# -- the key never appears -----------------------------------------------------------------------------


def key_forms(key: str) -> list[str]:
    """What a leak looks like: the key as it is, escaped, re-cased, URL-encoded, and any 8 of its characters."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in key)
    forms = [key, key.lower(), key.upper(), json.dumps(key)[1:-1], key.replace("/", "\\/"), escaped]
    forms += [urllib.parse.quote(key, safe=""), urllib.parse.quote(key, safe="").lower()]
    return forms + [key[i : i + 8] for i in range(len(key) - 7)]


def leaks(text: str, key: str = KEY) -> list[str]:
    low = text.lower()
    return [form for form in key_forms(key) if form.lower() in low]


def test_the_echoing_server_really_echoes_every_form(chat) -> None:
    """The fixture must be hostile: its error body holds the key in all the forms we check for."""
    body = chat.server.echoed(KEY)
    assert all(form.lower() in body.lower() for form in key_forms(KEY)[:8])


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "status_400", "status_504", "bad_key"])
def test_the_key_is_in_no_message_in_any_form(chat, serve, fault: str) -> None:
    from bench_harness._run import executors

    server = serve(faults=() if fault == "bad_key" else (fault,), echo_key=True, expected_key="sk-other-expected-key")
    client = client_for(chat, server, KEY)
    error = failure_of(lambda: client.complete("local-small", MESSAGES))
    stored = "".join(traceback.format_exception(error))
    assert server.requests == 1 and leaks(stored) == [], stored
    assert str(error).startswith(("HTTP 4", "HTTP 5")) and len(str(error)) <= chat.client.MESSAGE_LIMIT

    # and what the harness records of it today (message + traceback of an error row)
    def predict(item: dict, params: Any) -> dict:
        return client.complete("local-small", MESSAGES)

    task = executors.Task(0, {"input_id": "q"}, None)
    _, row = executors.execute_task(executable(predict), task, executors.RetryPolicy(0))
    assert row["error"] and leaks(json.dumps(row, default=str)) == []


def test_the_key_is_registered_and_the_environments_secrets_are_redacted(chat, monkeypatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-0123456789abcdef")
    text = f"a {KEY.upper()} and tok-0123456789ABCDEF"
    before = chat.secrets.redact(text)
    assert KEY.upper() in before and "0123456789abcdef" not in before.lower(), "a *_TOKEN variable is a secret"
    chat.client.ChatClient(chat.client.Endpoint("http://127.0.0.1:9/v1", KEY, 1.0))  # registers its key
    assert leaks(chat.secrets.redact(text)) == [] and "0123456789abcdef" not in chat.secrets.redact(text).lower()


# -- secrets redaction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", key_forms(KEY)[:8] + [KEY[3:24], KEY[-9:], json.dumps(json.dumps(KEY))])
def test_redaction_catches_every_form(chat, form: str) -> None:
    redacted = chat.secrets.redact(f'{{"error": "bad key {form} given"}}', [KEY])
    assert leaks(redacted) == [] and redacted.startswith('{"error": "bad key ') and "given" in redacted


def test_redaction_runs_before_truncation(chat) -> None:
    """A key straddling the cut: cut first, only 5 characters of it would be left, too few to recognise."""
    text = "x" * 294 + KEY
    shortened = chat.secrets.shorten(text, 300, [KEY])
    assert len(shortened) <= 300 and KEY[:5] not in shortened and shortened.endswith("***")
    naive = chat.secrets.redact(text[:299], [KEY])
    assert KEY[:5] in naive, "the test must be able to fail: truncating first leaks the key's start"


def test_redaction_leaves_ordinary_text_alone(chat) -> None:
    text = "HTTP 429: rate limit exceeded, retry in 2 s (request id req_0123)"
    assert chat.secrets.redact(text, [KEY]) == text
    assert chat.secrets.redact("short key xyz", ["xyz"]) == "short key xyz", "values under 8 characters are no secret"


def test_redaction_is_fast_for_long_tokens(chat) -> None:
    token = "eyJ" + "abcdefghijklmnopqrstuvwxyz0123456789" * 40  # a 1,443-character bearer token
    started = time.perf_counter()
    redacted = chat.secrets.redact("z" * 5000 + token[200:700] + "z" * 10, [token])
    assert redacted == "z" * 5000 + "***" + "z" * 10 and time.perf_counter() - started < 2.0


# -- connection reuse ----------------------------------------------------------------------------------


def test_one_client_per_endpoint_per_process(chat, serve, monkeypatch) -> None:
    server = serve()
    monkeypatch.setenv("LLM_BASE_URL", server.base_url + "/")
    keyless = chat.client.chat_client()
    assert keyless is chat.client.chat_client(), "one client (one connection pool) per endpoint"
    monkeypatch.setenv("LLM_API_KEY", KEY)
    keyed = chat.client.chat_client()
    assert keyed is not keyless and keyed is chat.client.chat_client(), "another key, another client"
    assert KEY not in repr(keyed.endpoint)


def test_n_requests_through_one_client_use_one_connection(chat, serve, monkeypatch) -> None:
    server = serve()
    monkeypatch.setenv("LLM_BASE_URL", server.base_url)
    for _ in range(20):
        chat.client.chat_completion("local-small", MESSAGES)
    assert (server.requests, server.connections) == (20, 1)


def latencies(chat, server, n: int) -> list[float]:
    client = client_for(chat, server)
    return [client.complete("local-small", MESSAGES)["latency"] for _ in range(n)]


def test_a_reused_connection_excludes_connection_set_up(chat, serve) -> None:
    """Each new connection costs 150 ms before it is served (a distant TLS handshake, say).

    Kept alive, only the first request pays it; with `Connection: close` every request does.
    """
    setup = 0.15
    kept = serve(connect_delay=setup)
    reused = latencies(chat, kept, 6)
    assert kept.connections == 1
    assert reused[0] >= setup and max(reused[1:]) < setup, reused
    closing = serve(connect_delay=setup, close_connections=True)
    fresh = latencies(chat, closing, 3)
    assert closing.connections == 3 and min(fresh) >= setup, fresh


def test_local_latency_figures(chat, serve, capsys) -> None:
    """The figures for the report, on loopback (no artificial set-up): new vs reused connections, interleaved."""
    kept, closing = client_for(chat, serve()), client_for(chat, serve(close_connections=True))
    kept.complete("local-small", MESSAGES)  # opens the connection that every later request reuses
    reused, fresh = [], []
    for _ in range(60):
        reused.append(kept.complete("local-small", MESSAGES)["latency"])
        fresh.append(closing.complete("local-small", MESSAGES)["latency"])
    with capsys.disabled():
        print(
            f"\nloopback latency, median of 60: reused connection {statistics.median(reused) * 1e3:.2f} ms,"
            f" new connection per request {statistics.median(fresh) * 1e3:.2f} ms",
            file=sys.stderr,
        )
    assert statistics.median(reused) < 1.0


# -- endpoint identity ---------------------------------------------------------------------------------


def test_the_endpoint_identity_names_the_endpoint_not_the_key_or_the_stand_ins_port(chat, monkeypatch) -> None:
    stand_in = chat.client.endpoint_identity()
    assert stand_in["base_url"] == chat.server.STAND_IN_IDENTITY, "the stand-in's random port must not break the cache"
    monkeypatch.setenv("LLM_BASE_URL", "https://user:pa55word@API.example.com/v1/")
    monkeypatch.setenv("LLM_API_KEY", KEY)
    remote = chat.client.endpoint_identity()
    assert remote == {"api": "openai-chat", "base_url": "https://api.example.com/v1"}
    monkeypatch.setenv("LLM_BASE_URL", "https://api.example.org/v1")
    assert chat.client.endpoint_identity() != remote
    json.dumps(remote)


def test_the_load_target_identity_follows_load_target_url(harness, monkeypatch) -> None:
    local = harness.load_target_identity()
    monkeypatch.setenv("LOAD_TARGET_URL", "http://user:secret@10.0.0.1:8080/work")
    assert harness.load_target_identity() == {"target": "http://10.0.0.1:8080/work"} != local


# -- the stand-ins and the public names ----------------------------------------------------------------


def test_public_names_resolve(harness) -> None:
    for name in harness._LAZY:
        assert getattr(harness, name) is not None, name
        assert name in harness.__all__


def test_the_load_service_counts_connections_and_fails_on_request(harness) -> None:
    with harness.LocalService(fail_every=2) as service:
        target = harness.HttpTarget(service.url, timeout=5.0)
        result = harness.burst(target, "a b a", harness.service_work("a b a"), 10, 2)
    assert (result["requests_ok"], result["requests_failed"]) == (5, 5)
    assert service.connections <= 2 + 5, "one keep-alive connection per thread, a new one after each 503"


# -- the endpoint is part of the cache identity (issue 14, row 4) ---------------------------------------

LLM_PARAMS = '''
"""The llm kind's parameters, by hand (a render would write them from params.yml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Params:
    model_name: str = "local-small"
    prompt_template: str = "direct"
    system_prompt_hash: str = "6ad0dcca6f5f"
    temperature: float = 0.0
    max_tokens: int = 64


def grid() -> list[Params]:
    return [Params("local-small"), Params("local-large")]
'''


@pytest.fixture
def llm_toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy project with the llm kind's own predict/data/scoring and four of its questions."""
    items = [json.loads(line) for line in (LLM_KIND / "sample.jsonl").read_text().splitlines()[:4]]
    files = {
        "params": LLM_PARAMS,
        **{name: (LLM_KIND / f"{name}.py").read_text() for name in ("predict", "data", "scoring")},
    }
    root = toy.write_project(tmp_path / "llm", items=items, files=files)
    (root / "pricing.toml").write_bytes((LLM_KIND / "pricing.toml").read_bytes())
    for name in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    yield from toy.activate(root, monkeypatch)


def run_llm(version: str):
    """One in-process run; predict's result wrapped as an old-style row (works before and after the envelope)."""
    from bench_harness import BenchmarkError, load_config
    from bench_harness._run.runner import RunOptions, run, user_modules

    predict = user_modules()[1].predict

    def old_style(item: dict, params: Any) -> dict:
        row = {"input_id": item["input_id"], "ground_truth": item["answer"], "error": None, "error_type": None}
        try:
            return {**row, **predict(item, params)}
        except BenchmarkError as exc:
            return {**row, "prediction": None, "raw_response": None, "error": str(exc), "error_type": exc.error_type}

    return run(load_config(), RunOptions(experiment_version=version, show_progress=False), predict_fn=old_style)


def test_the_llm_predict_answers_through_the_client(llm_toy) -> None:
    from bench_harness._core.user import user_module

    predict, params = user_module("predict"), user_module("params")
    item = user_module("data").load_items(limit=1)[0]
    row = predict.predict(item, params.grid()[1])
    assert row["prediction"] == row["ground_truth"] == "15" and row["prompt"].startswith("Question: What is 7 + 8?")
    assert row["cost_usd"] > 0 and row["model_version"].startswith("local-large")
    assert predict.CACHE_CONTEXT() == {"api": "openai-chat", "base_url": "local-stand-in/2026-01"}


def test_the_same_endpoint_twice_is_all_cache_hits(llm_toy, monkeypatch) -> None:
    """The control for the test below: the cache works for this project as it is."""
    from bench_harness import LocalLLMServer

    with LocalLLMServer({}) as server:
        monkeypatch.setenv("LLM_BASE_URL", server.base_url)
        first = run_llm("e1")
        assert first.computed == 8 and server.requests == 8
        second = run_llm("e2")
    assert second.cache_hits == 8 and server.requests == 8


def test_another_endpoint_is_not_a_cache_hit(llm_toy, monkeypatch) -> None:
    """Issue 14 row 4: same config, LLM_BASE_URL pointed at another server: no old answers passed off as its own."""
    from bench_harness import LocalLLMServer

    with LocalLLMServer({}) as first_server, LocalLLMServer({}) as second_server:
        monkeypatch.setenv("LLM_BASE_URL", first_server.base_url)
        assert run_llm("e1").computed == 8
        monkeypatch.setenv("LLM_BASE_URL", second_server.base_url)
        second = run_llm("e2")
    assert second.cache_hits == 0 and second_server.requests == 8
