"""The order keeper end to end on the test Anvil, every trade through the OrderBook (direct
fills off): traders place market and trigger orders of each kind through Ape; the keeper
(Anvil dev account 9, an order keeper and price updater) reads and sends through web3.

- with a price source (the pusher's code over a scripted source), market orders are filled
  in one `execute_orders_with_prices` at a price observed after them, an order Perp refuses
  is cancelled with its reason in the same batch, and the fees are credited and claimed;
- trigger orders stay pending while the price does not cross (nothing is pushed for them),
  then each is filled by the push that crosses its trigger;
- an order whose fill reverts (its stored collateral corrupted with `anvil_setStorageAt`
  beyond the Vault's escrow) is isolated by bisection and parked with a backoff while the
  rest of its batch is filled, and filled once repaired;
- `perpool-keeper orders` as a subprocess, without a price source, fills market orders once
  the price keeper (Ape) pushes a newer price, and exits 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import pytest
from eth_utils import keccak

from keepers.chain import Chain
from keepers.decide.orders import EXECUTED, PENDING, PRICE_NOT_NEWER
from keepers.lifecycle import Runner
from keepers.orders import OrderKeeper, PendingOrders
from keepers.pusher import PricePusher

from conftest import KEEPER_KEY, deploy_pool, fund
from liquidator_scene import push
from orders_scene import (
    FEE,
    LIMIT_INCREASE,
    MARKET_DECREASE,
    MARKET_INCREASE,
    STOP_LOSS,
    TAKE_PROFIT,
    WAD,
    ScriptedSource,
    cancelled_events,
    executed_events,
    place,
    price_updates,
)

ZERO = "0x0000000000000000000000000000000000000000"
SECONDS = 15  # an upper bound on each wait: most take one or two ticks


@pytest.fixture(scope="module")
def protocol(project, chain, deployer, keeper, lp, keeper_account):
    """Direct fills off: the OrderBook is the only way to trade."""
    return deploy_pool(project, chain, deployer, (keeper, keeper_account), lp, direct_fills=False)


@pytest.fixture(scope="module")
def traders(accounts, protocol):
    """Four funded traders (Ape test accounts 3 to 6)."""
    out = [accounts[i] for i in (3, 4, 5, 6)]
    for trader in out:
        fund(protocol, trader, 100_000)
    return out


def order_keeper(settings: Any, log: Any, metrics: Any, prices: dict[str, int] | None = None,
                 **overrides: Any) -> tuple[OrderKeeper, ScriptedSource | None]:
    """An order keeper on its own client; with `prices` (name -> WAD) it pushes them through
    a pusher whose source is scripted. Fees are claimed from the first cent."""
    own = settings.model_copy(update=overrides)
    client = Chain(own, log, metrics)
    pusher, source = None, None
    if prices is not None:
        source = ScriptedSource(dict(prices))
        pusher = PricePusher(client, own, log, metrics, source)
        source.clock = pusher.clock
    keeper = OrderKeeper(client, own, log, metrics, prices=pusher, start_prices=True, claim_threshold_usd=0)
    return keeper, source


def exists(protocol: Any, order_id: int) -> bool:
    return protocol.orders.get_order(order_id).owner != ZERO


def wait_past(chain: Any, t: int) -> None:
    """Wait until the chain's next block would be after `t` (an order placed at `t` fills
    only at a price observed after it: a keeper ticking in the same second waits)."""
    deadline = time.monotonic() + SECONDS
    while chain.pending_timestamp <= t:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def tick_until(keeper: OrderKeeper, done: Callable[[], bool], seconds: float = SECONDS) -> int:
    """Tick (as the Runner would, every poll interval) until `done()`; returns the ticks."""
    deadline, ticks = time.monotonic() + seconds, 0
    while not done():
        assert time.monotonic() < deadline, "the keeper did not get there in time"
        keeper.tick()
        ticks += 1
        time.sleep(keeper.settings.poll_interval_s)
    return ticks


# ---------------------------------------------------------------- following the orders


def _as_stored(record: Any) -> tuple:
    return (record.owner, record.market, record.kind, record.is_long, record.collateral_delta, record.size_delta,
            record.acceptable_price, record.trigger_price, record.execution_fee, record.placed_at, record.price_floor)


def test_pending_orders__created_updated_cancelled__equal_get_order_and_resumed_after_restart(
    protocol, chain, traders, markets, fresh, settings, log, metrics
):
    eth, btc = markets
    limit = place(protocol, traders[0], eth, LIMIT_INCREASE, True, 500, 2_000, trigger=2_900 * WAD)
    take_profit = place(protocol, traders[1], eth, TAKE_PROFIT, True, 0, 1_000, trigger=3_100 * WAD)
    stop_loss = place(protocol, traders[2], btc, STOP_LOSS, False, 0, 1_000, trigger=61_000 * WAD)
    client = Chain(settings, log, metrics)
    book = PendingOrders(client, settings, log, metrics)
    assert [(c.kind, c.key) for c in book.start()] == [
        ("created", limit), ("created", take_profit), ("created", stop_loss)]

    protocol.orders.update_order(limit, 2_500 * WAD, 2_990 * WAD, 2_950 * WAD, sender=traders[0])
    protocol.orders.cancel_order(take_profit, sender=traders[1])
    assert [(c.kind, c.key) for c in book.sync()] == [("updated", limit), ("cancelled", take_profit)]
    for order_id in (limit, stop_loss):
        assert _as_stored(book.orders[order_id]) == tuple(protocol.orders.get_order(order_id))
    assert book.orders[limit].created_block < book.orders[limit].block  # latency counts from creation
    assert metrics.get("orders_pending") == 2

    later = place(protocol, traders[3], eth, MARKET_INCREASE, False, 300, 900)
    restarted = PendingOrders(client, settings, log, metrics)  # the same state_dir
    restarted.start()
    assert restarted.last_scan_from == max(book.cursor - settings.reorg_depth, protocol.deploy_block)
    assert sorted(restarted.orders) == [limit, stop_loss, later]
    assert {i: _as_stored(r) for i, r in restarted.orders.items()} == {
        i: tuple(protocol.orders.get_order(i)) for i in (limit, stop_loss, later)}


# ---------------------------------------------------------------- market orders


def test_orders__market_orders__filled_in_one_push_and_execute_with_the_refused_one_cancelled(
    protocol, chain, traders, markets, fresh, settings, log, metrics, keeper_account
):
    eth, btc = markets
    start = chain.blocks.head.number + 1
    ids = [
        place(protocol, traders[0], eth, MARKET_INCREASE, True, 1_000, 5_000),
        place(protocol, traders[1], btc, MARKET_INCREASE, False, 2_000, 10_000),
        place(protocol, traders[2], eth, MARKET_DECREASE, True, 0, 1_000),  # no position: Perp refuses
        place(protocol, traders[3], eth, MARKET_INCREASE, False, 500, 2_000),
    ]
    floors = {i: int(protocol.orders.get_order(i).price_floor) for i in ids}
    balance = protocol.token.balanceOf(keeper_account)
    keeper, _source = order_keeper(settings, log, metrics, {"ETH": 3_003 * WAD, "BTC": 59_940 * WAD})
    keeper.startup()
    wait_past(chain, max(floors.values()))  # so that one push is newer than all four
    assert sorted(keeper.book.orders) == ids and metrics.get("orders_pending") == 4
    tick_until(keeper, lambda: not any(exists(protocol, i) for i in ids))

    client = keeper.chain
    executed, cancelled = executed_events(client, start), cancelled_events(client, start)
    assert sorted(executed) == [ids[0], ids[1], ids[3]] and list(cancelled) == [ids[2]]
    refused = cancelled[ids[2]]["args"]
    assert (refused["reason_code"], refused["reason"]) == (9, "perp: no position")
    assert refused["fee_paid"] == FEE and refused["canceller"] == keeper_account.address
    # one transaction pushed both prices and decided every order
    txs = {e["transactionHash"] for e in [*executed.values(), *cancelled.values()]}
    assert len(txs) == 1
    updates = {int(u["args"]["market"]): u for u in price_updates(client, start) if u["transactionHash"] in txs}
    assert {m: int(u["args"]["price"]) for m, u in updates.items()} == {eth: 3_003 * WAD, btc: 59_940 * WAD}
    for order_id in (ids[0], ids[1], ids[3]):
        args = executed[order_id]["args"]
        market = int(args["market"])
        assert int(updates[market]["args"]["observed_at"]) > floors[order_id]  # observed after the order
        assert int(args["price"]) == (3_003 * WAD if market == eth else 59_940 * WAD)  # no spread for 0.1 %
        assert args["executor"] == args["fee_receiver"] == keeper_account.address
    assert protocol.perp.get_position(traders[0], eth, True).size_usd == 5_000 * WAD
    assert protocol.perp.get_position(traders[1], btc, False).size_usd == 10_000 * WAD
    assert protocol.perp.get_position(traders[3], eth, False).size_usd == 2_000 * WAD

    assert metrics.get("orders_executed") == 3 and metrics.get("orders_cancelled") == 1
    assert metrics.get("order_batches_sent") == 1 and metrics.get("order_price_pushes") == 1
    assert metrics.get("order_batches_failed") == 0 and metrics.get("order_latency_blocks_count") == 3
    assert metrics.get("order_latency_blocks_max") >= 1
    # every fee (the refused order's too) was credited to the keeper in the Vault, and the
    # keeper claimed it (its threshold here: the first cent) after the batch
    fees = sum(int(e["args"]["execution_fee"]) for e in executed.values()) + int(refused["fee_paid"])
    assert fees == 4 * FEE
    claims = client.logs(client.vault.events.Claimed, start, client.head())
    assert [(c["args"]["account"], int(c["args"]["amount"])) for c in claims] == [(keeper_account.address, fees)]
    assert protocol.token.balanceOf(keeper_account) == balance + fees
    assert protocol.vault.claimable(keeper_account) == 0 and metrics.get("fees_claimed") == fees
    keeper.tick()  # the follower applies the block: nothing left
    assert keeper.book.orders == {} and metrics.get("orders_pending") == 0


def test_orders__lp_deposit_orders__filled_by_one_push_of_every_market_the_slippage_one_cancelled(
    protocol, chain, traders, markets, fresh, settings, log, metrics, keeper_account
):
    """An LP order prices the whole pool: the keeper pushes every market (not only those of
    trading orders) with it, observed after the orders, and the Vault's refusal (slippage)
    cancels its order in the same batch, the amount credited back."""
    eth, btc = markets
    start = chain.blocks.head.number + 1
    good = protocol.orders.create_deposit_order(10_000 * 10**6, 0, FEE, sender=traders[0]).return_value
    picky = protocol.orders.create_deposit_order(10_000 * 10**6, 2**95, FEE, sender=traders[1]).return_value
    floor = max(int(protocol.orders.get_order(i).price_floor) for i in (good, picky))
    keeper, _source = order_keeper(settings, log, metrics, {"ETH": 3_006 * WAD, "BTC": 60_060 * WAD})
    keeper.startup()
    wait_past(chain, floor)
    tick_until(keeper, lambda: not exists(protocol, good) and not exists(protocol, picky))

    client = keeper.chain
    executed, cancelled = executed_events(client, start), cancelled_events(client, start)
    assert list(executed) == [good] and list(cancelled) == [picky]
    refused = cancelled[picky]["args"]
    assert (refused["reason_code"], refused["reason"], int(refused["refund"])) == (52, "vault: slippage", 10_000 * 10**6)
    tx = executed[good]["transactionHash"]
    assert cancelled[picky]["transactionHash"] == tx
    pushed = {int(u["args"]["market"]) for u in price_updates(client, start) if u["transactionHash"] == tx}
    assert pushed == {eth, btc}
    deposits = [d for d in client.logs(client.vault.events.Deposit, start, client.head()) if d["transactionHash"] == tx]
    assert [(d["args"]["sender"], int(d["args"]["amount"])) for d in deposits] == [(traders[0].address, 10_000 * 10**6)]
    assert protocol.vault.balanceOf(traders[0]) == int(deposits[0]["args"]["shares"]) > 0
    assert protocol.vault.claimable(traders[1]) == 10_000 * 10**6


# ---------------------------------------------------------------- trigger orders


def test_orders__trigger_orders__pending_until_the_price_crosses_then_each_filled(
    protocol, chain, traders, markets, fresh, settings, log, metrics
):
    eth, btc = markets
    keeper, source = order_keeper(settings, log, metrics, {"ETH": 3_000 * WAD, "BTC": 60_000 * WAD})
    assert source is not None
    keeper.startup()
    opened = place(protocol, traders[0], eth, MARKET_INCREASE, True, 1_200, 6_000)
    tick_until(keeper, lambda: not exists(protocol, opened))
    assert protocol.perp.get_position(traders[0], eth, True).size_usd == 6_000 * WAD

    start = chain.blocks.head.number + 1
    take_profit = place(protocol, traders[0], eth, TAKE_PROFIT, True, 0, 2_000, trigger=3_100 * WAD)
    stop_loss = place(protocol, traders[0], eth, STOP_LOSS, True, 0, 2_000, trigger=2_900 * WAD)
    limit = place(protocol, traders[1], eth, LIMIT_INCREASE, True, 600, 3_000, trigger=2_960 * WAD)
    short_limit = place(protocol, traders[2], btc, LIMIT_INCREASE, False, 1_000, 5_000, trigger=61_000 * WAD)
    waiting = [take_profit, stop_loss, limit, short_limit]

    # a second of quotes newer than the orders, none crossing: nothing is pushed or sent
    pushes = metrics.get("order_price_pushes")
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        keeper.tick()
        time.sleep(settings.poll_interval_s)
    assert all(exists(protocol, i) for i in waiting)
    assert price_updates(keeper.chain, start) == [] and metrics.get("order_price_pushes") == pushes

    source.prices["ETH"] = 3_120 * WAD  # take-profit (>= 3,100) only
    tick_until(keeper, lambda: not exists(protocol, take_profit))
    assert [exists(protocol, i) for i in (stop_loss, limit, short_limit)] == [True] * 3
    source.prices["ETH"] = 2_930 * WAD  # the limit buy (<= 2,960), not the stop (<= 2,900)
    tick_until(keeper, lambda: not exists(protocol, limit))
    assert exists(protocol, stop_loss)
    source.prices["ETH"] = 2_880 * WAD  # the stop
    tick_until(keeper, lambda: not exists(protocol, stop_loss))

    executed = executed_events(keeper.chain, start)
    assert sorted(executed) == [take_profit, stop_loss, limit]
    price = {i: int(executed[i]["args"]["price"]) for i in executed}
    assert price[take_profit] >= 3_100 * WAD and price[limit] <= 2_960 * WAD and price[stop_loss] <= 2_900 * WAD
    assert protocol.perp.get_position(traders[0], eth, True).size_usd == 2_000 * WAD
    assert protocol.perp.get_position(traders[1], eth, True).size_usd == 3_000 * WAD
    # BTC's quote never rose to 61,000: no BTC price was pushed for the short limit
    assert exists(protocol, short_limit)
    assert tuple(protocol.orders.order_status(short_limit, True)) == (PENDING, PRICE_NOT_NEWER)
    assert {int(u["args"]["market"]) for u in price_updates(keeper.chain, start)} == {eth}
    assert cancelled_events(keeper.chain, start) == {}


# ---------------------------------------------------------------- a poisoned order


def _order_word_slot(protocol: Any, chain: Any, order_id: int) -> int:
    """The storage slot of word 1 (size | collateral << 128) of `_orders[order_id]`: the
    HashMap's slot is found by writing a probe value and reading `get_order` back (Vyper
    hashes the map's slot before the key)."""
    for map_slot in range(16):
        slot = int.from_bytes(keccak(map_slot.to_bytes(32, "big") + order_id.to_bytes(32, "big")), "big") + 1
        old = _word(protocol, chain, slot)
        if old == 0:
            continue
        _set_word(protocol, chain, slot, old ^ 1)  # size_delta + or - 1 wei
        hit = protocol.orders.get_order(order_id).size_delta != old & (2**128 - 1)
        _set_word(protocol, chain, slot, old)
        if hit:
            return slot
    raise AssertionError("the order's storage slot was not found")


def _word(protocol: Any, chain: Any, slot: int) -> int:
    return int(chain.provider.make_request("eth_getStorageAt", [protocol.orders.address, hex(slot), "latest"]), 16)


def _set_word(protocol: Any, chain: Any, slot: int, value: int) -> None:
    chain.provider.make_request(
        "anvil_setStorageAt", [protocol.orders.address, hex(slot), "0x" + value.to_bytes(32, "big").hex()]
    )


def test_orders__one_order_reverts_the_batch__isolated_and_parked_while_the_rest_fill(
    protocol, chain, keeper, traders, markets, fresh, settings, log, metrics, capsys
):
    eth, btc = markets
    ids = [place(protocol, traders[i % 4], eth if i % 2 else btc, MARKET_INCREASE, i % 3 == 0, 500, 1_500)
           for i in range(6)]
    poisoned = ids[3]
    slot = _order_word_slot(protocol, chain, poisoned)
    original = _word(protocol, chain, slot)
    # its collateral now far beyond everything escrowed: the Vault's settle reverts the fill
    _set_word(protocol, chain, slot, (original & (2**128 - 1)) | (10**15 << 128))
    push(protocol, chain, keeper, {eth: 3_000 * WAD, btc: 60_000 * WAD})  # newer than every order

    keeper_, _ = order_keeper(settings, log, metrics, order_retry_s=0.5, order_retry_max_s=0.5)
    keeper_.startup()
    statuses = keeper_.statuses(ids)
    assert {s.outcome for s in statuses.values()} == {EXECUTED}  # the chain would fill each
    keeper_.tick()
    assert [exists(protocol, i) for i in ids] == [i == poisoned for i in ids]
    assert poisoned in keeper_.parked and keeper_.parked[poisoned].failures == 1
    assert metrics.get("order_failures") == 1 and metrics.get("orders_executed") == 5
    assert metrics.get("order_batches_sent") == 1  # the five good ones went together
    events = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    parked = [e for e in events if e["event"] == "order_parked"]
    assert [e["order"] for e in parked] == [poisoned] and "vault: bucket underflow" in parked[0]["reason"]
    assert any(e["event"] == "batch_reverts" for e in events)

    keeper_.tick()  # parked: not even asked about
    assert keeper_.parked[poisoned].failures == 1
    time.sleep(0.6)
    keeper_.tick()  # retried after the backoff: fails alone again
    assert keeper_.parked[poisoned].failures == 2 and exists(protocol, poisoned)

    _set_word(protocol, chain, slot, original)  # repaired
    time.sleep(0.6)
    tick_until(keeper_, lambda: not exists(protocol, poisoned))
    assert metrics.get("orders_executed") == 6 and metrics.get("order_failures") == 2
    keeper_.tick()
    assert keeper_.parked == {} and metrics.get("orders_parked") == 0


# ---------------------------------------------------------------- the CLI


def test_orders__cli_without_a_price_source__fills_after_the_price_keeper_pushes_then_sigterm_exits_0(
    protocol, chain, keeper, traders, markets, fresh, rpc_url, deployment_file, tmp_path, keeper_account,
    settings, log, metrics
):
    eth, btc = markets
    start = chain.blocks.head.number + 1
    ids = [
        place(protocol, traders[0], eth, MARKET_INCREASE, True, 1_000, 4_000),
        place(protocol, traders[1], btc, MARKET_INCREASE, False, 1_000, 4_000),
    ]
    floors = {i: int(protocol.orders.get_order(i).price_floor) for i in ids}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERPOOL_")}
    env.update({"PERPOOL_STATE_DIR": str(tmp_path / "state"), "PERPOOL_METRICS_PORT": "0",
                "PERPOOL_PRIVATE_KEY": KEEPER_KEY, "PERPOOL_POLL_INTERVAL_S": "0.1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "keepers.cli", "orders", "--rpc-url", rpc_url, "--deployment", str(deployment_file)],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(x) for x in proc.stderr if x.startswith("{")), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any(x["event"] == "started" for x in list(lines)):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(0.05)
        time.sleep(0.5)  # a few ticks: the orders wait for a price newer than themselves
        assert all(exists(protocol, i) for i in ids)
        pushed_at = push(protocol, chain, keeper, {eth: 3_010 * WAD, btc: 60_100 * WAD})
        while any(exists(protocol, i) for i in ids):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert [x for x in lines if x["event"] == "stopping"][0]["why"] == "SIGTERM"
    assert lines[-1]["event"] == "stopped" and lines[-1]["code"] == 0
    assert sorted(x["order"] for x in lines if x["event"] == "order_executed") == ids
    assert not any(x["event"] == "push_planned" for x in lines)  # no price source: it only executes

    executed = executed_events(Chain(settings, log, metrics), start)
    for order_id in ids:
        args = executed[order_id]["args"]
        assert args["executor"] == keeper_account.address
        assert pushed_at > floors[order_id]
        assert int(args["price"]) == (3_010 * WAD if int(args["market"]) == eth else 60_100 * WAD)


def test_build_keepers__all_shares_the_pusher__orders_alone_pushes_only_when_asked(settings, log, metrics, protocol):
    from keepers.cli import build_keepers

    client = Chain(settings, log, metrics)
    everything = build_keepers("all", client, settings, log, metrics)
    assert [k.name for k in everything] == ["prices", "liquidator", "adl", "orders"]
    assert everything[-1].prices is everything[0] and not everything[-1].start_prices
    alone = build_keepers("orders", client, settings, log, metrics)
    assert [k.name for k in alone] == ["orders"] and alone[0].prices is None
    pushing = build_keepers("orders", client, settings.model_copy(update={"orders_push_prices": True}), log, metrics)
    assert isinstance(pushing[0].prices, PricePusher) and pushing[0].start_prices
