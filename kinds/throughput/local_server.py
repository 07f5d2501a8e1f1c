"""The service under load in the demo: a function and the same function behind HTTP. YOURS.

`handle(text)` is the work (tokenise, count, digest: a few hundred microseconds of real CPU
work that grows with the payload). `LocalService` serves it on 127.0.0.1 with a threaded
HTTP/1.1 server (keep-alive), as a small web service would. Point LOAD_TARGET_URL at your own
service instead and delete this file, or replace `handle` with the function you want to load.

For the tests, `fail_every=N` answers every Nth request with a 503.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def handle(text: str) -> dict[str, Any]:
    """The unit of work: word count, the most frequent word and a digest of the normalised text."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    top = Counter(words).most_common(1)
    digest = hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()
    return {"words": len(words), "top_word": top[0][0] if top else None, "digest": digest}


class _Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for real concurrency (the default 5 resets connections)."""

    daemon_threads = True
    request_queue_size = 256

class LocalService:
    """`POST /work` with `{"text": ...}` answers `handle(text)` as JSON; `url` is the endpoint."""

    def __init__(self, fail_every: int = 0, port: int = 0):
        self.fail_every = fail_every
        self.requests = 0
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", port), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="local-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/work"

    def start(self) -> LocalService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def should_fail(self) -> bool:
        with self.lock:
            self.requests += 1
            return bool(self.fail_every) and self.requests % self.fail_every == 0


def _handler(service: LocalService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without TCP_NODELAY, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if service.should_fail():
                status, payload = 503, b'{"error": "overloaded"}'
            else:
                try:
                    status, payload = 200, json.dumps(handle(json.loads(body)["text"])).encode()
                except (ValueError, KeyError, TypeError):
                    status, payload = 400, b'{"error": "expected a JSON object with a text"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            """Silent: thousands of requests would drown the progress bar."""

    return Handler
