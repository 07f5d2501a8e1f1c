"""A deterministic, OpenAI-compatible chat endpoint on 127.0.0.1. YOURS: delete it once you use a real one.

It is NOT a language model: it is the offline stand-in the demo and the tests run the real HTTP
client against, so every part of the pipeline (request, parsing, tokens, cost, retries) works
before you have an endpoint or a key. Its answers come from an answer book (the bundled data),
arithmetic is computed, and each `local-*` model makes deterministic mistakes at its own rate,
so configurations differ the way real models do.

Fault injection for the tests: `faults` is a queue of actions, one consumed per request:
`rate_limit` (429 with Retry-After), `server_error` (503), `timeout` (answers after
`delay_seconds`), `bad_json` (a 200 whose body is not JSON). `expected_key` makes the server
answer 401 to a request whose `Authorization: Bearer` key differs; it never logs or echoes the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Share of questions each stand-in model gets wrong (chosen by a hash: the same ones every run).
ERROR_RATES = {"local-small": 0.35, "local-large": 0.08}
MODEL_VERSION = "2026-01"
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


class _Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for real concurrency (the default 5 resets connections)."""

    daemon_threads = True
    request_queue_size = 256

class LocalLLMServer:
    """A threaded HTTP server with `POST /v1/chat/completions`; `base_url` ends in /v1."""

    def __init__(
        self,
        answers: dict[str, str],
        faults: Iterable[str] = (),
        expected_key: str | None = None,
        retry_after: float = 0.05,
        delay_seconds: float = 2.0,
        port: int = 0,
    ):
        self.model = StandInModel(answers)
        self.faults: deque[str] = deque(faults)
        self.expected_key = expected_key
        self.retry_after = retry_after
        self.delay_seconds = delay_seconds
        self.requests = 0
        self.authorized = 0
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", port), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="local-llm", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> LocalLLMServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            return self.faults.popleft() if self.faults else None

    def respond(self, body: dict[str, Any], authorization: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one request, faults first."""
        fault = self.next_fault()
        if self.expected_key is not None:
            if authorization != f"Bearer {self.expected_key}":
                return 401, {}, _error("invalid API key")
            with self.lock:
                self.authorized += 1
        if fault == "rate_limit":
            return 429, {"Retry-After": f"{self.retry_after:g}"}, _error("rate limit exceeded")
        if fault == "server_error":
            return 503, {}, _error("overloaded")
        if fault == "timeout":
            time.sleep(self.delay_seconds)
        if fault == "bad_json":
            return 200, {}, b"<html>gateway page</html>"
        if str(body.get("model")) not in ERROR_RATES:
            return 404, {}, _error(f"model {body.get('model')!r} does not exist here")
        return 200, {}, json.dumps(self.model.complete(body)).encode()


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message}}).encode()


def _handler(server: LocalLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one request must not wait for a delayed ACK (~40 ms)

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                status, headers, payload = 400, {}, _error("the body is not JSON")
            else:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    status, headers, payload = 404, {}, _error(f"no route {self.path}")
                else:
                    status, headers, payload = server.respond(body, self.headers.get("Authorization", ""))
            try:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing to answer

        def log_message(self, *args: Any) -> None:
            """Silent: a benchmark's output is its tables, not an access log."""

    return Handler
