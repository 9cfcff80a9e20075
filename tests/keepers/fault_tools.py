"""Fault injection for the keepers' fault tests (test_faults.py): a loopback JSON-RPC proxy
that forwards to the test Anvil and fails a share of the requests, or a scripted sequence of
them per method, or all of them while switched "down". Not a test module.

Fault kinds:
- "reset": the connection is closed with a TCP reset before anything is forwarded (requests
  raises ConnectionError);
- "drop": the request is forwarded (so it takes effect on the chain) and then the connection
  is reset: the answer is lost;
- "500": an HTTP 500 answer, nothing forwarded;
- "rpc": an HTTP 200 answer carrying a JSON-RPC error, nothing forwarded.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("reset", "drop", "500", "rpc")


class FaultyRpcProxy:
    """`http://127.0.0.1:<port>` forwarding JSON-RPC POSTs to `upstream`.

    `share` of the requests (seeded, so a run is repeatable up to thread timing) fail with a
    kind drawn from `kinds`, or from `method_kinds[method]` when the method has its own list
    (an empty list: that method never fails at random); `script[method]` is a queue of kinds
    its next requests fail with, whatever the share; `down` fails every request with
    `down_kind`. `faults` counts what was injected, `forwarded` what reached the upstream."""

    def __init__(self, upstream: str, share: float = 0.0, kinds: tuple[str, ...] = ("reset", "500", "rpc"),
                 seed: int = 5) -> None:
        self.upstream = upstream
        self.share, self.kinds = share, kinds
        self.method_kinds: dict[str, tuple[str, ...]] = {}
        self.script: dict[str, list[str]] = {}
        self.down = False
        self.down_kind = "reset"  # what every request gets while down: "reset" or "500"
        self.raw_sent: list[str] = []  # the params of every eth_sendRawTransaction forwarded
        self.faults: Counter[str] = Counter()
        self.forwarded = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy._handle(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> "FaultyRpcProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------ deciding

    def _fault_for(self, method: str) -> str | None:
        with self._lock:
            if self.down:
                return self.down_kind
            queue = self.script.get(method)
            if queue:
                return queue.pop(0)
            kinds = self.method_kinds.get(method, self.kinds)
            if kinds and self.share > 0 and self._rng.random() < self.share:
                return self._rng.choice(kinds)
            return None

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        method = str(request.get("method", "")) if isinstance(request, dict) else "batch"
        fault = self._fault_for(method)
        if fault is not None:
            with self._lock:
                self.faults[fault] += 1
                self.faults[f"{method}:{fault}"] += 1
        if fault == "reset":
            _reset(handler)
            return
        if fault == "500":
            _answer(handler, 500, b"injected failure")
            return
        if fault == "rpc":
            error = {"jsonrpc": "2.0", "id": request.get("id") if isinstance(request, dict) else None,
                     "error": {"code": -32603, "message": "injected JSON-RPC failure"}}
            _answer(handler, 200, json.dumps(error).encode())
            return
        try:
            answer = self._forward(body)
        except OSError:
            _reset(handler)
            return
        with self._lock:
            self.forwarded += 1
            if method == "eth_sendRawTransaction":
                self.raw_sent.append(str(request["params"][0]))
        if fault == "drop":
            _reset(handler)
            return
        _answer(handler, 200, answer)

    def _forward(self, body: bytes) -> bytes:
        request = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())


class _QuietServer(ThreadingHTTPServer):
    """A server that does not print a traceback for every connection it reset on purpose."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
    handler.close_connection = True
    conn: socket.socket = handler.connection
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
