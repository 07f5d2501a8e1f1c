"""What the local stand-in servers share: a threaded HTTP/1.1 JSON server on 127.0.0.1 that counts connections.

Template-owned. The stand-ins (llm_server.py, load_server.py) only say how to answer one POST:
`respond(path, body, headers) -> (status, headers, payload)`. Keep-alive is on (HTTP/1.1), Nagle
is off (a request must not wait ~40 ms for a delayed ACK), the listen backlog is deep enough for
real concurrency, and every accepted TCP connection is counted (`connections`), so a test can
tell a client that reuses its connection from one that opens a new one per request. For such
tests, `connect_delay` makes every new connection cost that long before it is served (as a TLS
handshake to a distant endpoint would), and `close_connections=True` answers `Connection: close`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Response = tuple[int, dict[str, str], bytes]


def json_error(message: str) -> bytes:
    """An OpenAI-style error body: {"error": {"message": ...}}."""
    return json.dumps({"error": {"message": message}}).encode()


class _Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for real concurrency (the default 5 resets connections)."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: LocalHttpServer):
        self.owner = owner
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection = super().get_request()
        self.owner.count_connection()
        if self.owner.connect_delay:
            time.sleep(self.owner.connect_delay)  # the set-up cost of a new connection, paid once per connection
        return connection


class LocalHttpServer:
    """Start/stop, a context manager, the base URL and the counters; subclasses define `respond`."""

    thread_name = "local-http"

    def __init__(self, port: int = 0, connect_delay: float = 0.0, close_connections: bool = False):
        self.lock = threading.Lock()
        self.requests = 0
        self.connections = 0
        self.connect_delay = connect_delay
        self.close_connections = close_connections
        self.httpd = _Server(("127.0.0.1", port), _Handler, self)
        # A short poll interval: stop() waits for it (the default 0.5 s makes every test's server slow to stop).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> Any:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count_connection(self) -> None:
        with self.lock:
            self.connections += 1

    def count_request(self) -> int:
        """The request's number (1, 2, ...), counted under the lock: threads answer at the same time."""
        with self.lock:
            self.requests += 1
            return self.requests

    def respond(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many requests
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait between them
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner = self.server.owner
        status, extra, payload = owner.respond(self.path, body, headers)
        if owner.close_connections:
            extra = {**extra, "Connection": "close"}
            self.close_connection = True
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    def log_message(self, *args: Any) -> None:
        """Silent: a benchmark's output is its tables, not an access log (which could hold a key)."""
