"""A deterministic, OpenAI-compatible chat endpoint on 127.0.0.1: the llm kind's offline stand-in.

Template-owned. It is NOT a language model: it is what the demo and the tests run the real client
(openai_chat.py) against, so every part of the pipeline (request, parsing, tokens, cost, retries)
works before you have an endpoint or a key. Its answers come from an answer book (the project's
data: each record's `question` and `answer`), arithmetic is computed, and each `local-*` model
makes deterministic mistakes at its own rate, so configurations differ the way real models do.

Fault injection for the tests: `faults` is a queue of actions, one consumed per request:
`rate_limit` (429 with Retry-After in seconds), `rate_limit_date` (429 with an HTTP-date
Retry-After), `server_error` (503), `status_NNN` (that HTTP status, e.g. `status_408`), `timeout`
(answers after `delay_seconds`), `bad_json` (a 200 whose body is not JSON). `expected_key`
makes the server answer 401 to a request whose bearer key differs. `echo_key=True` makes every
error body echo the bearer key the way careless servers do (whole, JSON-escaped, lower- and
upper-cased, URL-encoded, and cut near a 300-character limit): the client must never let any of
it through. `connect_delay` and `close_connections`: see local_http.py.

A provider's limits, for the adaptive-concurrency benchmark: `rate_limit` (requests a second, a
token bucket holding `rate_burst` requests, default a tenth of a second's worth) answers 429 with
the Retry-After until the next free slot to a request above it, at once, as providers do;
`latency_seconds` is how long every other answer takes. `rate_limited` counts the 429s.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable
from typing import Any

from .local_http import LocalHttpServer, Response, json_error

# Share of questions each stand-in model gets wrong (chosen by a hash: the same ones every run).
ERROR_RATES = {"local-small": 0.35, "local-large": 0.08}
MODEL_VERSION = "2026-01"
# What the cache identity says for the stand-in: its answers depend on this, not on its random port.
STAND_IN_IDENTITY = f"local-stand-in/{MODEL_VERSION}"
ARITHMETIC = re.compile(r"what is (-?\d+)\s*([-+*x])\s*(-?\d+)", re.IGNORECASE)


def count_tokens(text: str) -> int:
    """A rough token count (words and punctuation), good enough for usage and cost."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def question_of(messages: list[dict[str, Any]]) -> str:
    """The question in the last user message (the line after 'Question:', else the whole message)."""
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    found = re.search(r"Question:\s*(.+)", str(user))
    return (found.group(1) if found else str(user)).strip()


def wrong_answer(answer: str) -> str:
    """A plausible mistake: off by one for a number, a near miss for a word."""
    try:
        return str(int(answer) + 1)
    except ValueError:
        return answer[:-1] if len(answer) > 3 else "unknown"


class StandInModel:
    """Answers a chat request deterministically from the answer book."""

    def __init__(self, answers: dict[str, str]):
        self.answers = {q.strip().lower(): str(a) for q, a in answers.items()}

    def answer(self, model: str, question: str) -> str:
        computed = ARITHMETIC.search(question)
        if computed:
            a, op, b = int(computed.group(1)), computed.group(2), int(computed.group(3))
            truth = str(a + b if op == "+" else a - b if op == "-" else a * b)
        else:
            truth = self.answers.get(question.lower(), "I do not know")
        digest = hashlib.sha256(f"{model}|{question}".encode()).digest()
        return wrong_answer(truth) if digest[0] / 256 < ERROR_RATES[model] else truth

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        model = str(body.get("model"))
        messages = list(body.get("messages") or [])
        answer = self.answer(model, question_of(messages))
        wants_json = any("json" in str(m.get("content", "")).lower() for m in messages)
        content = json.dumps({"answer": answer}) if wants_json else f"The answer is {answer}."
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) for m in messages)
        finish_reason = "stop"
        limit = body.get("max_tokens")
        if isinstance(limit, int) and count_tokens(content) > limit:
            content, finish_reason = " ".join(content.split()[:limit]), "length"
        completion_tokens = count_tokens(content)
        return {
            "id": "chatcmpl-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16],
            "object": "chat.completion",
            "created": 0,
            "model": f"{model}-{MODEL_VERSION}",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def echoed(key: str) -> str:
    """The key as a careless server echoes it: every form, the last one straddling a 300-character cut."""
    forms = [
        key,
        "".join(f"\\u{ord(c):04x}" for c in key),  # JSON-escaped
        key.replace("/", "\\/"),  # JSON-escaped the way some encoders do it (\/)
        key.lower(),
        key.upper(),
        urllib.parse.quote(key, safe=""),
    ]
    text = "invalid request for key " + " / ".join(forms)
    return text.ljust(300 - len(key) // 2, ".") + key


class LocalLLMServer(LocalHttpServer):
    """`POST /v1/chat/completions`; `base_url` ends in /v1."""

    thread_name = "local-llm"

    def __init__(
        self,
        answers: dict[str, str],
        faults: Iterable[str] = (),
        expected_key: str | None = None,
        retry_after: float = 0.05,
        delay_seconds: float = 2.0,
        echo_key: bool = False,
        port: int = 0,
        rate_limit: float = 0.0,
        rate_burst: float | None = None,
        latency_seconds: float = 0.0,
        **connection_options: Any,
    ):
        super().__init__(port, **connection_options)
        self.rate_limit = rate_limit
        self.rate_burst = max(1.0, rate_burst if rate_burst is not None else rate_limit / 10)
        self.tokens = self.rate_burst
        self.refilled = time.monotonic()
        self.rate_limited = 0
        self.latency_seconds = latency_seconds
        self.model = StandInModel(answers)
        self.faults: deque[str] = deque(faults)
        self.expected_key = expected_key
        self.retry_after = retry_after
        self.delay_seconds = delay_seconds
        self.echo_key = echo_key
        self.authorized = 0

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            return self.faults.popleft() if self.faults else None

    def respond(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {}, json_error("the body is not JSON")
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, {}, json_error(f"no route {path}")
        return self.complete(request, headers.get("authorization", ""))

    def over_limit(self) -> float | None:
        """Seconds until the token bucket has a request to spare, or None (and one is spent) when it has."""
        if not self.rate_limit:
            return None
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate_burst, self.tokens + (now - self.refilled) * self.rate_limit)
            self.refilled = now
            if self.tokens >= 1:
                self.tokens -= 1
                return None
            self.rate_limited += 1
            return (1 - self.tokens) / self.rate_limit

    def complete(self, body: dict[str, Any], authorization: str) -> Response:
        """(status, headers, body) for one chat request, faults first."""
        wait = self.over_limit()
        if wait is not None:
            with self.lock:
                self.requests += 1
            key = authorization.removeprefix("Bearer ")
            return 429, {"Retry-After": f"{wait:.3f}"}, self.error("rate limit exceeded", key)
        fault = self.next_fault()
        key = authorization.removeprefix("Bearer ")
        if self.expected_key is not None:
            if key != self.expected_key:
                return 401, {}, self.error("invalid API key", key)
            with self.lock:
                self.authorized += 1
        if fault == "rate_limit":
            return 429, {"Retry-After": f"{self.retry_after:g}"}, self.error("rate limit exceeded", key)
        if fault == "rate_limit_date":
            when = email.utils.formatdate(time.time() + self.retry_after, usegmt=True)
            return 429, {"Retry-After": when}, self.error("rate limit exceeded", key)
        if fault == "server_error":
            return 503, {}, self.error("overloaded", key)
        if fault and fault.startswith("status_"):
            return int(fault.removeprefix("status_")), {}, self.error(fault, key)
        if fault == "timeout":
            time.sleep(self.delay_seconds)
        if fault == "bad_json":
            return 200, {}, b"<html>gateway page</html>"
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        if str(body.get("model")) not in ERROR_RATES:
            return 404, {}, self.error(f"model {body.get('model')!r} does not exist here", key)
        return 200, {}, json.dumps(self.model.complete(body)).encode()

    def error(self, message: str, key: str) -> bytes:
        return json_error(f"{message}: {echoed(key)}" if self.echo_key and key else message)


_started: dict[int, str] = {}
_start_lock = threading.Lock()


def project_answers() -> dict[str, str]:
    """The answer book: each record of the project's data that has a `question` and an `answer`."""
    from .._core.datafiles import dataset

    return {str(r["question"]): str(r["answer"]) for r in dataset() if "question" in r and "answer" in r}


def local_llm_url() -> str:
    """The stand-in's base URL, started once per process (threads may ask at the same time)."""
    with _start_lock:
        pid = os.getpid()  # a forked worker needs its own server: the parent's serving thread is not in it
        if pid not in _started:
            _started[pid] = LocalLLMServer(project_answers()).start().base_url
        return _started[pid]
