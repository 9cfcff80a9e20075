"""The price pusher against the test Anvil: it pushes on its first tick, keeps the Oracle
fresh across pinned time jumps, pushes early on a deviation, steps a large move through the
Oracle's jump bound (or refuses it), refuses and logs when its two sources disagree, and
never pushes an older timestamp. Ape only sets the scene and checks the Oracle."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from keepers.chain import Chain as KeeperChain
from keepers.decide.prices import WAD
from keepers.lifecycle import Runner
from keepers.pusher import PricePusher, build_source
from keepers.settings import SettingsError
from keepers.sources import CsvReplay, HttpJson


def _events(capsys: Any) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]


def _at(chain: Any, t: int) -> None:
    """Time passes on chain until `t`: a block mined at `t - 1` (Anvil simulates calls at the
    latest block, so time must pass through blocks, as on a real chain) and the next block
    pinned at `t`, so the keeper's push lands exactly then."""
    chain.mine(timestamp=t - 1)
    chain.pending_timestamp = t


def _seed(
    protocol: Any, keeper: Any, chain: Any, at: int, eth: int = 3_000 * WAD, btc: int = 60_000 * WAD
) -> None:
    """The scene: the Oracle holds `eth`/`btc` observed at `at` (a push from Ape's keeper)."""
    chain.pending_timestamp = at
    m = protocol.markets
    protocol.oracle.set_prices([m["ETH"], m["BTC"]], [eth, btc], at, sender=keeper)


def _csv(tmp_path: Path, rows: list[tuple[int, str, str]]) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text("timestamp,market,price\n" + "".join(f"{t},{m},{p}\n" for t, m, p in rows))
    return path


def _pusher(
    settings: Any,
    log: Any,
    metrics: Any,
    source_path: Path | None = None,
    check: Any = None,
    **overrides: Any,
) -> PricePusher:
    settings = settings.model_copy(update=overrides)
    client = KeeperChain(settings, log, metrics)
    if source_path is None:
        return PricePusher.from_settings(client, settings, log, metrics)
    pusher = PricePusher(client, settings, log, metrics, CsvReplay(source_path, lambda: 0), check)
    pusher.source.clock = pusher.clock  # type: ignore[attr-defined]  (replay on the chain's time)
    return pusher


def _stored(protocol: Any, name: str) -> tuple[int, int]:
    data = protocol.oracle.price_data(protocol.markets[name])
    return data.price, data.observed_at


# ---------------------------------------------------------------- heartbeat


def test_pusher__first_tick__pushes_every_market_from_the_random_walk(
    settings, log, metrics, protocol, keeper, chain, capsys
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    pusher = _pusher(settings, log, metrics)  # source "random", seeded at the Oracle's prices
    _at(chain, t0 + 61)  # the heartbeat (60 s) is due at the first tick
    runner = Runner([pusher], log, metrics, settings.poll_interval_s, settings.failure_budget)
    assert runner.run(max_ticks=1, max_seconds=30) == 0

    expected = build_source(
        settings, {"ETH": 3_000 * WAD, "BTC": 60_000 * WAD}, lambda: t0 + 61
    ).read()
    assert _stored(protocol, "ETH") == (expected["ETH"].price, t0 + 61)
    assert _stored(protocol, "BTC") == (expected["BTC"].price, t0 + 61)
    assert metrics.get("prices_pushed") == 2 and metrics.get("push_refused") == 0
    events = _events(capsys)
    saw = next(e for e in events if e["event"] == "saw")
    assert saw["quotes"]["ETH"][1] == t0 + 61
    pushed = next(e for e in events if e["event"] == "pushed")
    assert pushed["why"].startswith("heartbeat") and pushed["observed_at"] == t0 + 61


def test_pusher__pinned_time_jumps__keeps_the_oracle_fresh(
    settings, log, metrics, protocol, keeper, chain
):
    t = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t)
    pusher = _pusher(settings, log, metrics)
    pusher.startup()
    for jump in (90, 61, 400, 200, 75):  # 400 s: past max_price_age, the stale price is replaced
        t += jump
        _at(chain, t)
        pusher.tick()
        for name in ("ETH", "BTC"):
            assert _stored(protocol, name)[1] == t
            assert not protocol.oracle.is_stale(protocol.markets[name])
        protocol.oracle.get_price(protocol.markets["ETH"], True)  # usable for risk-adding actions
    assert metrics.get("prices_pushed") == 10 and metrics.get("push_failed") == 0


def test_pusher__fresh_and_unmoved__sends_nothing(
    settings, log, metrics, protocol, keeper, chain, tmp_path
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 3, "ETH", "3000.9"), (t0 + 3, "BTC", "60010")])
    pusher = _pusher(settings, log, metrics, path)
    pusher.startup()
    nonce = pusher.chain.w3.eth.get_transaction_count(pusher.chain.account.address)
    _at(chain, t0 + 10)
    pusher.tick()
    assert pusher.chain.w3.eth.get_transaction_count(pusher.chain.account.address) == nonce
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)


# ---------------------------------------------------------------- deviation and the jump bound


def test_pusher__deviation__pushes_before_the_heartbeat(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(
        tmp_path,
        [
            (t0 + 5, "ETH", "3000.5"),
            (t0 + 5, "BTC", "60000"),
            (t0 + 12, "ETH", "3020.123456789"),
            (t0 + 12, "BTC", "60001"),
        ],
    )
    pusher = _pusher(settings, log, metrics, path)
    pusher.startup()
    _at(chain, t0 + 8)
    pusher.tick()  # 1.6 bps, 8 s old: nothing to do
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)
    _at(chain, t0 + 15)
    pusher.tick()  # ETH +67 bps >= 50: pushed though the heartbeat is 45 s away
    assert _stored(protocol, "ETH") == (3_020_123_456_789 * 10**9, t0 + 12)
    assert _stored(protocol, "BTC") == (60_001 * WAD, t0 + 12)
    pushed = [e for e in _events(capsys) if e["event"] == "pushed"]
    assert len(pushed) == 1 and pushed[0]["why"] == "deviation: ETH moved 67 bps (>= 50)"


def test_pusher__large_move_with_split__stepped_through_the_jump_bound(
    settings, log, metrics, protocol, keeper, chain, tmp_path
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 20, "ETH", "3150"), (t0 + 20, "BTC", "60000")])
    jump = protocol.oracle.config().max_jump_bps
    assert jump == 200  # the default: 2 % per push
    pusher = _pusher(settings, log, metrics, path)  # split_large_moves is on by default
    pusher.startup()
    _at(chain, t0 + 21)
    pusher.tick()
    assert _stored(protocol, "ETH") == (3_150 * WAD, t0 + 20)  # 3000 -> 3060 -> 3121.2 -> 3150
    assert metrics.get("pushes") == 3 and metrics.get("push_failed") == 0


def test_pusher__large_move_without_split__refused_with_an_alert(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 20, "ETH", "3750"), (t0 + 20, "BTC", "60100")])
    pusher = _pusher(settings, log, metrics, path, split_large_moves=False)
    pusher.startup()
    _at(chain, t0 + 21)
    pusher.tick()
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)
    assert _stored(protocol, "BTC") == (60_100 * WAD, t0 + 20)  # the other market still lands
    refused = [e for e in _events(capsys) if e["event"] == "refused"]
    assert [(e["market"], e["kind"]) for e in refused] == [("ETH", "jump")]
    assert "beyond the Oracle's 200 bps per push" in refused[0]["reason"]
    assert metrics.get("push_refused") == 1


# ---------------------------------------------------------------- two sources


class _Prices(BaseHTTPRequestHandler):
    payload: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = json.dumps(type(self).payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def check_server() -> Iterator[tuple[str, type[_Prices]]]:
    handler = type("Handler", (_Prices,), {"payload": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/prices", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_pusher__sources_disagree__refused_and_logged(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys, check_server
):
    url, handler = check_server
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 70, "ETH", "3010"), (t0 + 70, "BTC", "60050")])
    handler.payload = {
        "ETH": {"price": "3161", "timestamp": t0 + 69},  # 5 % above the primary
        "BTC": {"price": "60060.5", "timestamp": t0 + 69},
    }  # agrees within 1 %
    pusher = _pusher(
        settings, log, metrics, path, HttpJson(url), check_source="http", check_http_url=url
    )
    pusher.startup()
    _at(chain, t0 + 71)
    pusher.tick()
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)  # refused
    assert _stored(protocol, "BTC") == (60_050 * WAD, t0 + 70)  # confirmed, pushed
    refused = [e for e in _events(capsys) if e["event"] == "refused"]
    assert [(e["market"], e["kind"]) for e in refused] == [("ETH", "disagreement")]
    assert "primary 3010 vs check 3161" in refused[0]["reason"]
    assert metrics.get("push_refused") == 1 and metrics.get("prices_pushed") == 1

    handler.payload = {
        "ETH": {"price": "3011", "timestamp": t0 + 80},
        "BTC": {"price": "60050", "timestamp": t0 + 80},
    }
    _at(chain, t0 + 81)
    pusher.tick()  # the sources agree again: ETH lands (its heartbeat is overdue)
    assert _stored(protocol, "ETH") == (3_010 * WAD, t0 + 70)


def test_pusher__check_quote_stale__confirms_nothing(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys, check_server
):
    url, handler = check_server
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 70, "ETH", "3010"), (t0 + 70, "BTC", "60050")])
    handler.payload = {
        "ETH": {"price": "3010", "timestamp": t0 + 30},  # agrees, but 41 s old (max 30 s)
        "BTC": {"price": "60050", "timestamp": t0 + 70},
    }
    pusher = _pusher(settings, log, metrics, path, HttpJson(url))
    pusher.startup()
    _at(chain, t0 + 71)
    pusher.tick()
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)
    assert _stored(protocol, "BTC") == (60_050 * WAD, t0 + 70)
    refused = [e for e in _events(capsys) if e["event"] == "refused"]
    assert [(e["market"], e["kind"]) for e in refused] == [("ETH", "unconfirmed")]
    assert (
        "check source: observed at" in refused[0]["reason"] and "41 s ago" in refused[0]["reason"]
    )


def test_pusher__check_source_down__tick_fails_and_nothing_is_pushed(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    path = _csv(tmp_path, [(t0 + 70, "ETH", "3010"), (t0 + 70, "BTC", "60050")])
    pusher = _pusher(
        settings, log, metrics, path, HttpJson("http://127.0.0.1:9/prices", timeout_s=1)
    )
    _at(chain, t0 + 71)
    runner = Runner([pusher], log, metrics, settings.poll_interval_s, failure_budget=2)
    assert runner.run(max_ticks=5, max_seconds=30) == 1  # the failure budget stops it
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0)
    failed = [e for e in _events(capsys) if e["event"] == "tick_failed"]
    assert len(failed) == 2 and "http source http://127.0.0.1:9/prices" in failed[0]["error"]


# ---------------------------------------------------------------- timestamps


def test_pusher__source_older_than_the_oracle__never_pushes_an_older_timestamp(
    settings, log, metrics, protocol, keeper, chain, tmp_path, capsys
):
    t0 = chain.pending_timestamp + 5
    path = _csv(tmp_path, [(t0 - 10, "ETH", "3100"), (t0 - 10, "BTC", "61000")])
    _seed(protocol, keeper, chain, t0)  # another updater pushed after the source's observation
    pusher = _pusher(settings, log, metrics, path, max_source_age_s=300)
    pusher.startup()
    nonce = pusher.chain.w3.eth.get_transaction_count(pusher.chain.account.address)
    _at(chain, t0 + 70)  # the heartbeat is due, the source has nothing newer
    pusher.tick()
    assert pusher.chain.w3.eth.get_transaction_count(pusher.chain.account.address) == nonce
    assert _stored(protocol, "ETH") == (3_000 * WAD, t0) and _stored(protocol, "BTC") == (
        60_000 * WAD,
        t0,
    )
    refused = [e for e in _events(capsys) if e["event"] == "refused"]
    assert sorted((e["market"], e["kind"]) for e in refused) == [
        ("BTC", "not_newer"),
        ("ETH", "not_newer"),
    ]
    assert "never push an older or equal timestamp" in refused[0]["reason"]


def test_pusher__stored_ahead_of_the_chain__waits_without_sending(
    settings, log, metrics, protocol, keeper, chain, tmp_path
):
    t0 = chain.pending_timestamp + 5
    _seed(protocol, keeper, chain, t0)
    _at(chain, t0 + 1)
    m = protocol.markets
    protocol.oracle.set_prices(
        [m["ETH"]], [3_030 * WAD], t0 + 25, sender=keeper
    )  # within the 30 s skew
    path = _csv(tmp_path, [(t0 + 5, "ETH", "3100"), (t0 + 5, "BTC", "60000")])
    pusher = _pusher(settings, log, metrics, path)
    pusher.startup()
    _at(chain, t0 + 10)
    pusher.tick()
    assert _stored(protocol, "ETH") == (3_030 * WAD, t0 + 25)
    assert metrics.get("prices_pushed") == 0


def test_build_source__settings_without_a_url_or_file__refused_naming_the_setting(settings):
    with pytest.raises(SettingsError, match="csv_path"):
        build_source(settings.model_copy(update={"source": "csv"}), {}, lambda: 0)
    with pytest.raises(SettingsError, match="check_http_url"):
        build_source(settings.model_copy(update={"check_source": "http"}), {}, lambda: 0, "check")
    assert build_source(settings, {"ETH": WAD}, lambda: 0, "check") is None
