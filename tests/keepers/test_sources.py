"""Price sources without a chain: the random walk is deterministic per seed and integer
only, the CSV replay converts decimals exactly and serves the latest row at or before the
clock, and the HTTP source (against a local server in a thread) reads a good payload and
refuses a bad one, a timeout and a 500 with a clear `SourceError`."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from keepers.decide.prices import BPS, WAD, Quote
from keepers.sources import CsvReplay, HttpJson, RandomWalk, SourceError, to_wad

NOW = 1_700_000_000
START = {"ETH": 3_000 * WAD, "BTC": 60_000 * WAD}


class Clock:
    """A settable clock standing in for the chain's."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# ---------------------------------------------------------------- random walk


def _walk(seed: int, reads: int, **kw) -> list[dict[str, Quote]]:
    walk = RandomWalk(START, seed=seed, clock=Clock(), **kw)
    return [walk.read() for _ in range(reads)]


def test_random_walk__same_seed__same_prices():
    assert _walk(7, 50) == _walk(7, 50)


def test_random_walk__other_seed__other_prices():
    assert _walk(7, 20) != _walk(8, 20)


def test_random_walk__ints_within_the_step_and_observed_at_the_clock():
    clock = Clock()
    walk = RandomWalk(START, seed=3, clock=clock, step_bps=20, jump_every=0)
    previous = dict(START)
    for i in range(200):
        clock.now = NOW + i
        quotes = walk.read()
        assert walk.markets() == ["BTC", "ETH"]
        for market, quote in quotes.items():
            assert type(quote.price) is int and quote.observed_at == NOW + i
            assert abs(quote.price - previous[market]) * BPS <= 20 * previous[market]
            previous[market] = quote.price


def test_random_walk__jumps_every_nth_read():
    walk = RandomWalk(
        {"ETH": 3_000 * WAD}, seed=1, clock=Clock(), step_bps=0, jump_bps=500, jump_every=5
    )
    prices = [walk.read()["ETH"].price for _ in range(10)]
    assert prices[:4] == [3_000 * WAD] * 4
    assert prices[4] in (3_150 * WAD, 2_850 * WAD)
    assert prices[5:9] == [prices[4]] * 4 and prices[9] != prices[8]


def test_random_walk__bad_parameters__refused():
    with pytest.raises(ValueError):
        RandomWalk({"ETH": 0}, seed=1, clock=Clock())
    with pytest.raises(ValueError):
        RandomWalk(START, seed=1, clock=Clock(), jump_bps=BPS)


# ---------------------------------------------------------------- CSV


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return path


def test_csv__decimals_converted_exactly(tmp_path):
    path = _csv(
        tmp_path,
        "timestamp,market,price\n"
        f"{NOW},ETH,3000.123456789012345678\n"
        f"{NOW},BTC,64999.99\n"
        f"{NOW},DOGE,0.000000000000000001\n",
    )
    quotes = CsvReplay(path, Clock()).read()
    assert quotes["ETH"] == Quote(3_000_123_456_789_012_345_678, NOW)
    assert quotes["BTC"].price == 64_999_990_000_000_000_000_000
    assert quotes["DOGE"].price == 1


def test_csv__replays_the_latest_row_at_or_before_the_clock_whatever_the_file_order(tmp_path):
    path = _csv(
        tmp_path, f"{NOW + 20},ETH,3020\n{NOW},ETH,3000\n{NOW + 10},ETH,3010\n{NOW + 5},BTC,60000\n"
    )
    clock = Clock(NOW - 1)
    replay = CsvReplay(path, clock)
    assert replay.markets() == ["BTC", "ETH"]
    assert replay.read() == {}
    seen = []
    for t in (NOW, NOW + 4, NOW + 5, NOW + 10, NOW + 19, NOW + 20, NOW + 99):
        clock.now = t
        seen.append(
            (t, {m: (q.price // WAD, q.observed_at - NOW) for m, q in replay.read().items()})
        )
    assert seen == [
        (NOW, {"ETH": (3_000, 0)}),
        (NOW + 4, {"ETH": (3_000, 0)}),
        (NOW + 5, {"ETH": (3_000, 0), "BTC": (60_000, 5)}),
        (NOW + 10, {"ETH": (3_010, 10), "BTC": (60_000, 5)}),
        (NOW + 19, {"ETH": (3_010, 10), "BTC": (60_000, 5)}),
        (NOW + 20, {"ETH": (3_020, 20), "BTC": (60_000, 5)}),
        (NOW + 99, {"ETH": (3_020, 20), "BTC": (60_000, 5)}),
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"{NOW},ETH,3000.1234567890123456789", "more than 18 decimals"),
        (f"{NOW},ETH,abc", "not a decimal number"),
        (f"{NOW},ETH,-1", "negative"),
        (f"{NOW},ETH,0", "zero price"),
        (f"{NOW},ETH,NaN", "not a finite number"),
        (f"{NOW}.5,ETH,3000", "not an integer timestamp"),
        (f"{NOW},ETH", "expected timestamp,market,price"),
        (f"{NOW},ETH,3000\n{NOW},ETH,3001", "a second ETH row"),
    ],
)
def test_csv__bad_row__refused_at_start_naming_the_line(tmp_path, row, message):
    with pytest.raises(SourceError, match=message) as info:
        CsvReplay(_csv(tmp_path, row + "\n"), Clock())
    assert "prices.csv:" in str(info.value)


def test_csv__missing_file__refused(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        CsvReplay(tmp_path / "none.csv", Clock())


def test_to_wad__never_a_float():
    assert to_wad("0.1") + to_wad("0.2") == to_wad("0.3")
    with pytest.raises(SourceError, match="floats are refused"):
        to_wad(0.1)


# ---------------------------------------------------------------- HTTP


GOOD = {
    "ETH": {"price": "3000.5", "timestamp": NOW},
    "BTC": {"price": 60000.25, "timestamp": NOW - 3},
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        routes = {
            "/good": (200, json.dumps(GOOD)),
            "/not-json": (200, "<html>oops</html>"),
            "/no-price": (200, json.dumps({"ETH": {"timestamp": NOW}})),
            "/bad-price": (200, json.dumps({"ETH": {"price": "3k", "timestamp": NOW}})),
            "/list": (200, json.dumps([1, 2])),
            "/error": (500, json.dumps({"error": "upstream down"})),
        }
        if self.path == "/slow":
            time.sleep(1.0)
            status, body = 200, json.dumps(GOOD)
        else:
            status, body = routes.get(self.path, (404, "{}"))
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout case)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http__good_payload__exact_quotes(server):
    source = HttpJson(f"{server}/good")
    assert source.read() == {
        "ETH": Quote(3_000_500_000_000_000_000_000, NOW),
        "BTC": Quote(60_000_250_000_000_000_000_000, NOW - 3),
    }
    assert source.markets() == ["BTC", "ETH"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/not-json", "not JSON"),
        ("/no-price", 'ETH: expected {"price"'),
        ("/bad-price", "ETH price: '3k' is not a decimal number"),
        ("/list", "expected a non-empty JSON object"),
    ],
)
def test_http__bad_payload__source_error(server, path, message):
    with pytest.raises(SourceError, match=message) as info:
        HttpJson(f"{server}{path}").read()
    assert f"http source {server}{path}" in str(info.value)


def test_http__timeout__source_error(server):
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"no answer within 0.2 s"):
        HttpJson(f"{server}/slow", timeout_s=0.2).read()
    assert time.monotonic() - started < 1.0


def test_http__server_error__source_error(server):
    with pytest.raises(SourceError, match="answered HTTP 500"):
        HttpJson(f"{server}/error").read()


def test_http__nothing_listening__source_error():
    with pytest.raises(SourceError, match="ConnectionError"):
        HttpJson("http://127.0.0.1:9/prices", timeout_s=1).read()


def test_build_source__settings__walk_and_http_take_their_settings():
    from keepers.pusher import build_source
    from keepers.settings import load_settings

    settings = load_settings(walk_step_bps=7, walk_jump_bps=300, walk_jump_every=9, seed=5,
                             check_source="http", check_http_url="http://127.0.0.1:1/p",
                             http_timeout_s=0.25)
    walk = build_source(settings, {"ETH": 3_000 * WAD}, lambda: 1_700_000_000, "source")
    assert isinstance(walk, RandomWalk)
    assert (walk.step_bps, walk.jump_bps, walk.jump_every) == (7, 300, 9)
    http = build_source(settings, {"ETH": 3_000 * WAD}, lambda: 1_700_000_000, "check")
    assert isinstance(http, HttpJson) and http.timeout_s == 0.25
