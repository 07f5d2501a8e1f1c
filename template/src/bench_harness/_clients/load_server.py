"""The throughput kind's service under load: a function, and the same function behind HTTP on 127.0.0.1.

Template-owned. `handle(text)` is the work (tokenise, count, digest: a few hundred microseconds
of real CPU work that grows with the payload). `LocalService` serves it at `POST /work` with a
threaded HTTP/1.1 keep-alive server, as a small web service would. Point LOAD_TARGET_URL at your
own service instead, or load your own function (predict.py's `target` parameter).

For the tests, `fail_every=N` answers every Nth request with a 503.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter
from typing import Any

from .local_http import LocalHttpServer, Response, json_error

# What the cache identity says for the local service: its answers depend on this, not on its random port.
LOCAL_SERVICE_IDENTITY = "local-service/1"


def handle(text: str) -> dict[str, Any]:
    """The unit of work: word count, the most frequent word and a digest of the normalised text."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    top = Counter(words).most_common(1)
    digest = hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()
    return {"words": len(words), "top_word": top[0][0] if top else None, "digest": digest}


class LocalService(LocalHttpServer):
    """`POST /work` with `{"text": ...}` answers `handle(text)` as JSON; `url` is the endpoint."""

    thread_name = "local-service"

    def __init__(self, fail_every: int = 0, port: int = 0, **connection_options: Any):
        super().__init__(port, **connection_options)
        self.fail_every = fail_every

    @property
    def url(self) -> str:
        return f"{self.origin}/work"

    def respond(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        number = self.count_request()
        if self.fail_every and number % self.fail_every == 0:
            return 503, {}, json_error("overloaded")
        try:
            return 200, {}, json.dumps(handle(json.loads(body)["text"])).encode()
        except (ValueError, KeyError, TypeError):
            return 400, {}, json_error("expected a JSON object with a text")


_started: dict[int, str] = {}
_start_lock = threading.Lock()


def local_service_url() -> str:
    """The local service's URL, started once per process (threads may ask at the same time)."""
    with _start_lock:
        pid = os.getpid()  # a forked worker needs its own server: the parent's serving thread is not in it
        if pid not in _started:
            _started[pid] = LocalService().start().url
        return _started[pid]
