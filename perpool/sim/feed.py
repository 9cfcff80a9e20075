"""The scenario's price feed: a loopback HTTP endpoint in the price keeper's JSON format
(`{"ETH": {"price": "2900.5", "timestamp": 1700000000}, ...}`, see keepers/sources.py).

The driver publishes a step's prices only after chain time has reached the step's end, so
the keeper can never push a price before its moment (a CSV source would let it read ahead
by the node's pending-block clock)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from perpool.sim.scenarios import decimal_text


class PriceFeed:
    """Serves the latest published quotes; start it before the keeper, stop it after."""

    def __init__(self) -> None:
        self._quotes: dict[str, dict[str, object]] = {}
        self._lock = threading.Lock()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with feed._lock:
                    body = json.dumps(feed._quotes).encode()
                self.send_response(200 if feed._quotes else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/prices"

    def publish(self, prices: dict[str, int], timestamp: int) -> None:
        with self._lock:
            self._quotes = {m: {"price": decimal_text(p), "timestamp": timestamp} for m, p in prices.items()}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
