"""predict(): one chat completion of one configuration on one item. YOURS: edit freely.

The guide's single-execution function: stateless, never raises for a bad item, measures its own
latency, and keeps what the guide says an LLM benchmark must save: the raw response text, the
exact prompt, finish_reason, prompt/completion tokens and the model version the endpoint reports,
plus the cost priced from pricing.toml (the prices used are stored in the row: a snapshot).

The endpoint is any OpenAI-compatible chat API, configured by the environment only:

    LLM_BASE_URL   e.g. https://api.openai.com/v1 (unset: the local stand-in in local_server.py)
    LLM_API_KEY    sent to LLM_BASE_URL as `Authorization: Bearer ...`; never stored
    LLM_TIMEOUT_SECONDS   per request (default 30)

The model, the prompt template and the system prompt's hash are parameters, so each is a
column and a different value is a different configuration. Rate limits (429) and server errors
(5xx) come back as error rows of a transient category with the server's Retry-After: the
harness retries them with backoff and never caches them.

Editing this file invalidates the cached results of every configuration (the cache key includes
a digest of this file), unless you pin PREDICT_VERSION and bump it yourself.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import threading
import time
import tomllib
import urllib.error
import urllib.request
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from bench_harness import project_root
from bench_harness import (
    API_TIMEOUT,
    CLIENT_ERROR,
    CONNECTION_ERROR,
    INVALID_VALUE,
    MISSING_FIELD,
    PARSE_ERROR,
    RATE_LIMIT,
    SERVER_ERROR,
    BenchmarkError,
    classify_exception,
    describe,
)
from bench_harness import segment_fields
from .params import Params
from .scoring import extract_answer, normalise

# None: the cache key uses a digest of this file. A string: the cache key uses it instead.
PREDICT_VERSION: str | None = None

# System prompts are chosen by the sha256 (first 12 hex digits) of their text: the `system_prompt_hash`
# parameter. Editing a prompt changes its hash, so old results can never pass for the new prompt.
SYSTEM_PROMPTS = (
    "You are a careful assistant. Answer every question with a single word or number, nothing else.",
)
# The user message; {question} is the item's question.
PROMPT_TEMPLATES = {
    "direct": "Question: {question}\nReply in the form: The answer is <answer>.",
    "json": 'Question: {question}\nReply with JSON only: an object with one key, "answer".',
}


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


PROMPTS_BY_HASH = {prompt_hash(text): text for text in SYSTEM_PROMPTS}


# -- the endpoint -----------------------------------------------------------------------------------


_START = threading.Lock()


def local_endpoint() -> str:
    """The offline stand-in's base URL, started once per process (threads may ask at the same time)."""
    with _START:
        return _start_local_endpoint()


@lru_cache(maxsize=1)
def _start_local_endpoint() -> str:
    from .data import load_items
    from .local_server import LocalLLMServer

    answers = {str(item["question"]): str(item["answer"]) for item in load_items() if "question" in item}
    return LocalLLMServer(answers).start().base_url


def endpoint() -> tuple[str, str | None, float]:
    """(base URL, API key, timeout) from the environment; the key is only ever put in a header.

    No key goes to the local stand-in, and no other variable (OPENAI_API_KEY, say) is read: a key
    is sent only to the endpoint it was set for.
    """
    timeout = float(os.environ.get("LLM_TIMEOUT_SECONDS") or 30)
    base_url = os.environ.get("LLM_BASE_URL")
    if not base_url:
        return local_endpoint(), None, timeout
    return base_url.rstrip("/"), os.environ.get("LLM_API_KEY") or None, timeout


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_category(status: int) -> str:
    if status == 429:
        return RATE_LIMIT
    if status in (408, 504):
        return API_TIMEOUT
    return SERVER_ERROR if status >= 500 else CLIENT_ERROR


def chat(payload: dict[str, Any]) -> dict[str, Any]:
    """POST /chat/completions and return the decoded response; failures raise BenchmarkError."""
    base_url, api_key, timeout = endpoint()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        f"{base_url}/chat/completions", data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        detail = error.read()[:300].decode("utf-8", errors="replace")
        if api_key:
            detail = detail.replace(api_key, "***")
        retry_after = retry_after_seconds(error.headers.get("Retry-After"))
        raise BenchmarkError(f"HTTP {error.code}: {detail}", status_category(error.code), retry_after) from None
    except TimeoutError as error:
        raise BenchmarkError(f"no answer within {timeout:g}s", API_TIMEOUT) from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise BenchmarkError(f"no answer within {timeout:g}s", API_TIMEOUT) from error
        raise BenchmarkError(f"cannot reach the endpoint: {error.reason}", CONNECTION_ERROR) from error
    try:
        return json.loads(body)
    except ValueError as error:
        raise BenchmarkError(f"the endpoint answered non-JSON: {body[:80]!r}", PARSE_ERROR) from error


# -- cost -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def pricing() -> tuple[str | None, dict[str, dict[str, float]]]:
    """(digest of pricing.toml, prices per model); read once per process, so a run uses one snapshot."""
    path = project_root() / "pricing.toml"
    if not path.is_file():
        return None, {}
    text = path.read_bytes()
    return hashlib.sha256(text).hexdigest()[:12], tomllib.loads(text.decode("utf-8")).get("models", {})


def price_row(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, Any]:
    """cost_usd and the prices it was computed with (None for a model pricing.toml does not list)."""
    digest, models = pricing()
    prices = models.get(model)
    row: dict[str, Any] = {"pricing_digest": digest, "price_input_per_mtok": None, "price_output_per_mtok": None}
    if prices is None or prompt_tokens is None or completion_tokens is None:
        return {**row, "cost_usd": None}
    price_in, price_out = float(prices["input_per_mtok"]), float(prices["output_per_mtok"])
    cost = (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
    return {**row, "price_input_per_mtok": price_in, "price_output_per_mtok": price_out, "cost_usd": cost}


# -- predict ----------------------------------------------------------------------------------------


def build_messages(item: dict[str, Any], params: Params) -> list[dict[str, str]]:
    if "_malformed" in item:
        raise BenchmarkError(item["_malformed"], INVALID_VALUE)
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BenchmarkError("the item has no question", MISSING_FIELD)
    system = PROMPTS_BY_HASH.get(params.system_prompt_hash)
    if system is None:
        known = ", ".join(PROMPTS_BY_HASH)
        raise BenchmarkError(f"no system prompt has hash {params.system_prompt_hash!r} (known: {known})", INVALID_VALUE)
    template = PROMPT_TEMPLATES.get(params.prompt_template)
    if template is None:
        raise BenchmarkError(f"unknown prompt_template {params.prompt_template!r}", INVALID_VALUE)
    return [{"role": "system", "content": system}, {"role": "user", "content": template.format(question=question)}]


def predict(item: dict[str, Any], params: Params) -> dict[str, Any]:
    """Ask one question; every failure becomes an error row that keeps what was produced."""
    row: dict[str, Any] = {
        "input_id": item.get("input_id"),
        "prediction": None,
        "raw_response": None,
        "ground_truth": normalise(item["answer"]) if item.get("answer") is not None else None,
        "latency": None,
        "error": None,
        "error_type": None,
        "prompt": None,
        "finish_reason": None,
        "model_version": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
        "cost_usd": None,
        **segment_fields(item, params=params),
    }
    try:
        messages = build_messages(item, params)
        row["prompt"] = messages[-1]["content"]
        payload = {
            "model": params.model_name,
            "messages": messages,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
        }
        started = time.perf_counter()
        response = chat(payload)
        row["latency"] = time.perf_counter() - started
        usage = response.get("usage") or {}
        row.update(
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            model_version=response.get("model"),
        )
        row.update(price_row(params.model_name, row["prompt_tokens"], row["completion_tokens"]))
        choice = response["choices"][0]
        row["finish_reason"] = choice.get("finish_reason")
        row["raw_response"] = choice["message"]["content"]
        row["prediction"] = extract_answer(row["raw_response"])
    except Exception as exc:  # noqa: BLE001 - errors are data: record them, never stop the run
        row["error"] = describe(exc)
        row["error_type"] = classify_exception(exc)
        if isinstance(exc, BenchmarkError) and exc.retry_after is not None:
            row["retry_after"] = exc.retry_after  # the harness waits this long before retrying
    return row
