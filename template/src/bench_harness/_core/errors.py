"""Error categories, following the guide: errors are data, recorded per row, never a crash.

Template-owned. `predict()` raises on failure (a `BenchmarkError` when it knows the category);
the harness's row envelope (`_run/envelope.py`) records the message, the category from
`classify_exception` and the traceback. Transient categories are retried by the runner with
exponential backoff and jitter, and are never cached.
"""

from __future__ import annotations

import json
import socket
from typing import Any

API_TIMEOUT = "API_TIMEOUT"
RATE_LIMIT = "RATE_LIMIT"
CONNECTION_ERROR = "CONNECTION_ERROR"
SERVER_ERROR = "SERVER_ERROR"
MISSING_FIELD = "MISSING_FIELD"
INVALID_VALUE = "INVALID_VALUE"
PARSE_ERROR = "PARSE_ERROR"
CLIENT_ERROR = "CLIENT_ERROR"
UNKNOWN = "UNKNOWN"
# The harness's own: predict() did not return within [run] task_timeout_seconds. Not retried (the
# call may still be running, abandoned), unlike an API_TIMEOUT the client reports.
TIMEOUT = "TIMEOUT"

TRANSIENT = frozenset({API_TIMEOUT, RATE_LIMIT, CONNECTION_ERROR, SERVER_ERROR})
ALL_CATEGORIES = (
    API_TIMEOUT,
    RATE_LIMIT,
    CONNECTION_ERROR,
    SERVER_ERROR,
    MISSING_FIELD,
    INVALID_VALUE,
    PARSE_ERROR,
    CLIENT_ERROR,
    UNKNOWN,
    TIMEOUT,
)


class BenchmarkError(Exception):
    """An error that already knows its category (and, for rate limits, how long to wait).

    `raw_response` and any keyword `extras` are what predict() produced before it failed (the
    model's unparsable answer, token counts, ...): the error row keeps them.
    """

    def __init__(
        self,
        message: str,
        error_type: str = UNKNOWN,
        retry_after: float | None = None,
        raw_response: Any = None,
        **extras: Any,
    ):
        super().__init__(message)
        self.error_type = error_type
        self.retry_after = retry_after
        self.raw_response = raw_response
        self.extras = extras


def _status_code(exc: BaseException) -> int | None:
    """HTTP status of an exception from requests/httpx/openai-style clients, if it carries one."""
    for holder in (exc, getattr(exc, "response", None)):
        code = getattr(holder, "status_code", None) or getattr(holder, "status", None)
        if isinstance(code, int):
            return code
    return None


def classify_exception(exc: BaseException) -> str:
    """Map an exception to one of the guide's categories, by type first and by name second."""
    if isinstance(exc, BenchmarkError):
        return exc.error_type
    status = _status_code(exc)
    if status is not None:
        if status == 429:
            return RATE_LIMIT
        if status in (408, 504):
            return API_TIMEOUT
        if status >= 500:
            return SERVER_ERROR
        if status >= 400:
            return CLIENT_ERROR
    name = type(exc).__name__.lower()
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timeout" in name:
        return API_TIMEOUT
    if "ratelimit" in name or "toomanyrequests" in name:
        return RATE_LIMIT
    if isinstance(exc, ConnectionError) or "connect" in name:
        return CONNECTION_ERROR
    if isinstance(exc, KeyError):
        return MISSING_FIELD
    if isinstance(exc, json.JSONDecodeError):
        return PARSE_ERROR
    if isinstance(exc, (ValueError, TypeError)):
        return INVALID_VALUE
    return UNKNOWN


def is_transient(error_type: str | None) -> bool:
    """True for failures worth retrying: timeouts, rate limits, connection and 5xx errors."""
    return error_type in TRANSIENT


def describe(exc: BaseException) -> str:
    """A one-line message that keeps the exception type (KeyError('x') alone says just 'x')."""
    return f"{type(exc).__name__}: {exc}"


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds a server asked us to wait (Retry-After), when the exception carries it."""
    if isinstance(exc, BenchmarkError) and exc.retry_after is not None:
        return exc.retry_after
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
