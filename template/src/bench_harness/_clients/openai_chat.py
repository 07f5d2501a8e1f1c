"""An OpenAI-compatible chat client on the official `openai` package, as a benchmark needs it.

Template-owned. What it adds to the SDK, and why:

- One SDK client per (process, base URL, key), shared by every thread: its connection pool keeps
  connections open, so a row's latency is the request, not a fresh TCP (and TLS) set-up.
- The SDK's own retries are off (`max_retries=0`): the harness retries transient errors itself,
  with its backoff, its retry counts in the row, and the server's Retry-After.
- SDK exceptions become `BenchmarkError`s of our categories: timeout -> API_TIMEOUT, 429 ->
  RATE_LIMIT (with Retry-After, in seconds or as an HTTP date), connection -> CONNECTION_ERROR,
  408/504 -> API_TIMEOUT, other 5xx -> SERVER_ERROR, other 4xx (a bad key too) -> CLIENT_ERROR, an
  unreadable answer -> PARSE_ERROR. An error body is summarised (status + its message, redacted,
  then shortened), never stored raw, and the SDK's exception is not chained (its text holds the body).
- The key comes from the environment only and is never written anywhere: it is registered with
  `_core/secrets.py`, and every message this module produces is redacted in all the forms a key
  can take in text.
- A completion's usage, finish_reason, model version and cost (priced from pricing.toml, the prices
  used stored in the row: a snapshot) come back as the row's columns.

The endpoint, from the environment:

    LLM_BASE_URL          e.g. https://api.openai.com/v1 (unset: the local stand-in, llm_server.py)
    LLM_API_KEY           sent to LLM_BASE_URL only, as `Authorization: Bearer ...`; never stored
    LLM_TIMEOUT_SECONDS   per request (default 30)
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._core.errors import (
    API_TIMEOUT,
    CLIENT_ERROR,
    CONNECTION_ERROR,
    PARSE_ERROR,
    RATE_LIMIT,
    SERVER_ERROR,
    UNKNOWN,
    BenchmarkError,
)
from .._core.secrets import redact, register_secret, shorten

DEFAULT_TIMEOUT_SECONDS = 30.0
# The SDK refuses to build a client without a key; a keyless endpoint (the stand-in, a local vLLM
# or Ollama) gets this placeholder, which is not a secret.
NO_KEY = "no-key"
MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Endpoint:
    """Where requests go; `api_key` is left out of repr() so no log line or traceback can show it."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    is_stand_in: bool = False


def endpoint_from_env() -> Endpoint:
    """LLM_BASE_URL / LLM_API_KEY / LLM_TIMEOUT_SECONDS; no LLM_BASE_URL: the local stand-in, and no key.

    No other variable is read for the key (OPENAI_API_KEY, say): a key goes only to the endpoint
    it was set for.
    """
    timeout = float(os.environ.get("LLM_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS)
    base_url = (os.environ.get("LLM_BASE_URL") or "").strip()
    if not base_url:
        from .llm_server import local_llm_url

        return Endpoint(local_llm_url(), None, timeout, is_stand_in=True)
    return Endpoint(base_url.rstrip("/"), os.environ.get("LLM_API_KEY") or None, timeout)


def endpoint_identity() -> dict[str, Any]:
    """What the answers depend on besides the parameters (the model is one): part of the cache identity.

    The base URL without credentials (the stand-in is named by its version, not its random port).
    The key and the timeout are not part of it: they do not change an answer.
    """
    base_url = (os.environ.get("LLM_BASE_URL") or "").strip()
    if not base_url:
        from .llm_server import STAND_IN_IDENTITY

        return {"api": "openai-chat", "base_url": STAND_IN_IDENTITY}
    parts = urlsplit(base_url.rstrip("/"))
    netloc = parts.netloc.rpartition("@")[2].lower()  # never user:password
    return {
        "api": "openai-chat",
        "base_url": redact(parts._replace(scheme=parts.scheme.lower(), netloc=netloc).geturl()),
    }


# -- the client -------------------------------------------------------------------------------------


class ChatClient:
    """`complete(model, messages, **options)` -> the row's columns; failures raise `BenchmarkError`."""

    def __init__(self, endpoint: Endpoint):
        import openai

        self.endpoint = endpoint
        self.secrets = (endpoint.api_key,) if endpoint.api_key else ()
        register_secret(endpoint.api_key)
        self.sdk = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key or NO_KEY,
            timeout=endpoint.timeout,
            max_retries=0,  # the harness retries, with Retry-After and its own counts
        )

    def complete(self, model: str, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
        """One chat completion: raw_response, finish_reason, model_version, tokens, cost, latency."""
        import openai

        started = time.perf_counter()
        try:
            response = self.sdk.chat.completions.create(model=model, messages=messages, **options)
        except openai.OpenAIError as exc:
            raise self.as_benchmark_error(exc) from None  # not chained: the SDK's message holds the raw body
        except ValueError as exc:  # a 200 whose body is not JSON, or not a chat completion
            raise BenchmarkError(
                self.safe(f"the endpoint's answer is not a chat completion: {exc}"), PARSE_ERROR
            ) from None
        latency = time.perf_counter() - started
        try:
            choice = response.choices[0]
            content = choice.message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise BenchmarkError(self.safe(f"unexpected answer: {exc}"), PARSE_ERROR) from None
        usage = getattr(response, "usage", None)
        tokens = {
            "prompt_tokens": getattr(usage, "prompt_tokens", None),
            "completion_tokens": getattr(usage, "completion_tokens", None),
            "total_tokens": getattr(usage, "total_tokens", None),
        }
        return {
            "raw_response": redact(content, self.secrets) if content and self.secrets else content,
            "finish_reason": choice.finish_reason,
            "model_version": getattr(response, "model", None),
            **tokens,
            **price_row(model, tokens["prompt_tokens"], tokens["completion_tokens"]),
            "latency": latency,
        }

    def safe(self, text: str) -> str:
        """Redacted (this client's key and every known secret), then shortened: in that order."""
        return shorten(redact(text, self.secrets), MESSAGE_LIMIT)

    def as_benchmark_error(self, exc: Exception) -> BenchmarkError:
        """The SDK's exception as one of our categories, with a short, redacted message."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return BenchmarkError(f"no answer within {self.endpoint.timeout:g}s", API_TIMEOUT)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return BenchmarkError(
                self.safe(f"cannot reach the endpoint: {type(cause).__name__}: {cause}"), CONNECTION_ERROR
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = self.safe(f"HTTP {status}: {error_summary(exc)}")
            return BenchmarkError(message, status_category(status), retry_after_seconds(exc.response.headers))
        if isinstance(exc, openai.APIResponseValidationError):
            return BenchmarkError(self.safe(f"the endpoint's answer is not a chat completion: {exc}"), PARSE_ERROR)
        return BenchmarkError(self.safe(f"{type(exc).__name__}: {exc}"), UNKNOWN)


def error_summary(exc: Any) -> str:
    """The human part of an error body: its `error.message` (or `message`, or `detail`), else its text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            for name in ("message", "detail", "error"):
                if isinstance(inner.get(name), str):
                    return inner[name]
        elif isinstance(inner, str):
            return inner
    if isinstance(body, str):
        return body
    try:
        return exc.response.text
    except Exception:  # noqa: BLE001 - a streamed or closed body: the status alone says enough
        return ""


def status_category(status: int) -> str:
    if status == 429:
        return RATE_LIMIT
    if status in (408, 504):
        return API_TIMEOUT
    return SERVER_ERROR if status >= 500 else CLIENT_ERROR


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a server asked for: `retry-after-ms`, or Retry-After in seconds or as an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    try:
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
    except ValueError:
        pass
    return parse_retry_after(headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
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


# -- one client per process and endpoint -------------------------------------------------------------

_clients: dict[tuple[int, str, str, float], ChatClient] = {}
_clients_lock = threading.Lock()


def chat_client(endpoint: Endpoint | None = None) -> ChatClient:
    """The shared client of `endpoint` (default: the environment's), made once per process.

    Keyed by the process too: a forked worker must not share its parent's open connections.
    """
    endpoint = endpoint or endpoint_from_env()
    key_digest = hashlib.sha256((endpoint.api_key or "").encode()).hexdigest()
    slot = (os.getpid(), endpoint.base_url, key_digest, endpoint.timeout)
    with _clients_lock:
        if slot not in _clients:
            _clients[slot] = ChatClient(endpoint)
        return _clients[slot]


def chat_completion(model: str, messages: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """One completion from the environment's endpoint (LLM_BASE_URL, else the local stand-in).

    Returns raw_response, finish_reason, model_version, prompt/completion/total tokens, cost_usd
    with the prices used and pricing.toml's digest, and latency (the request alone). Raises
    `BenchmarkError` of the right category on any failure.
    """
    return chat_client().complete(model, messages, **options)


# -- cost -------------------------------------------------------------------------------------------


def pricing_path() -> Path | None:
    from .._core.config import project_root

    try:
        return project_root() / "pricing.toml"
    except FileNotFoundError:
        return None


@lru_cache(maxsize=4)
def pricing(path: Path | None) -> tuple[str | None, dict[str, dict[str, float]]]:
    """(digest of pricing.toml, prices per model); read once per process, so a run uses one snapshot."""
    if path is None or not path.is_file():
        return None, {}
    text = path.read_bytes()
    return hashlib.sha256(text).hexdigest()[:12], tomllib.loads(text.decode("utf-8")).get("models", {})


def price_row(model: str, prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, Any]:
    """cost_usd and the prices it was computed with (None for a model pricing.toml does not list)."""
    digest, models = pricing(pricing_path())
    prices = models.get(model)
    row: dict[str, Any] = {"pricing_digest": digest, "price_input_per_mtok": None, "price_output_per_mtok": None}
    if prices is None or prompt_tokens is None or completion_tokens is None:
        return {**row, "cost_usd": None}
    price_in, price_out = float(prices["input_per_mtok"]), float(prices["output_per_mtok"])
    cost = (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
    return {**row, "price_input_per_mtok": price_in, "price_output_per_mtok": price_out, "cost_usd": cost}
