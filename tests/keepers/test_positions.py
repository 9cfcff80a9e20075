"""The position book (keepers/positions.py) against a real Anvil: rebuilt from Perp's events
it equals `Perp.get_position` for every position after opens, increases, collateral moves,
partial and full closes and liquidations; a restart resumes from the persisted cursor and
misses nothing done while it was down; a reorg (an Anvil snapshot restored and different
blocks mined) is undone and rescanned. Ape sets the scene; the book reads through web3."""

from __future__ import annotations

import json

import pytest

from keepers.chain import Chain
from keepers.decide.liquidation import Indices, MarketParams, Values, is_liquidatable, values
from keepers.positions import STATE_FILE, PositionBook, _chunks

from conftest import fund
from liquidator_scene import UNIT, WAD, assert_book_matches, decrease, onchain, open_position, push


@pytest.fixture(scope="module")
def traders(accounts, protocol):
    """Five funded traders (Ape test accounts 3 to 7)."""
    out = [accounts[i] for i in (3, 4, 5, 6, 7)]
    for trader in out:
        fund(protocol, trader, 200_000)
    return out


def test_book__every_kind_of_change__equals_get_position(protocol, chain, keeper, traders, markets, fresh,
                                                          settings, log, metrics, tmp_path):
    eth, btc = markets
    keys = [
        open_position(protocol, traders[0], eth, True, 1_000, 5),
        open_position(protocol, traders[0], eth, False, 2_000, 3),
        open_position(protocol, traders[1], btc, True, 1_500, 10),
        open_position(protocol, traders[2], eth, True, 500, 40),  # liquidated below
        open_position(protocol, traders[3], btc, False, 800, 4),  # closed below
    ]
    client = Chain(settings, log, metrics)
    book = PositionBook(client, settings, log, metrics)
    assert [c.kind for c in book.start()] == ["update"] * 5
    assert_book_matches(book, protocol, keys)

    open_position(protocol, traders[0], eth, True, 200, 10)  # increase
    protocol.perp.increase_position(btc, True, 300 * UNIT, 0, 0, sender=traders[1])  # collateral only
    decrease(protocol, traders[0], eth, False, 2_500 * WAD)  # partial close
    decrease(protocol, traders[1], btc, True, 0, 100 * UNIT)  # withdraw collateral
    decrease(protocol, traders[3], btc, False, onchain(protocol, keys[4])[0])  # full close
    push(protocol, chain, keeper, {eth: 2_800 * WAD})
    assert protocol.perp.is_liquidatable(*keys[3])
    protocol.perp.liquidate(*keys[3], keeper, sender=keeper)

    changes = book.sync()
    assert [c.kind for c in changes] == ["update"] * 4 + ["close", "liquidation"]
    assert changes[-1].key == keys[3] and changes[-1].fee_receiver == keeper.address
    assert_book_matches(book, protocol, keys)
    assert metrics.get("positions_tracked") == 3 and book.cursor == chain.blocks.head.number

    # the restated health function gives Perp's own numbers for every tracked position
    scale = client.call(client.perp.functions.token_scale())
    for key, record in book.positions.items():
        market, is_long = key[1], key[2]
        params = MarketParams.from_configs(client.call(client.configurator.functions.configs(market)),
                                           client.call(client.configurator.functions.risk_configs(market)), scale)
        idx = Indices(*client.call(client.perp.functions.current_indices(market)))
        price = client.call(client.perp.functions.close_price(market, is_long))
        for p in (price, price * 9 // 10, price * 11 // 10):
            onchain_values = client.call(client.perp.functions.position_values(*key, p))
            assert values(record.position, params, idx, p) == Values(*onchain_values)
        assert is_liquidatable(record.position, params, idx, price) == client.call(
            client.perp.functions.is_liquidatable(*key))

    # a book without state, from the deployment block, ends the same
    other = PositionBook(client, settings.model_copy(update={"state_dir": tmp_path / "other"}), log, metrics)
    other.start()
    assert other.positions == book.positions


def test_book__restart__resumes_from_the_persisted_cursor_and_misses_nothing(
    protocol, chain, keeper, traders, markets, fresh, settings, log, metrics
):
    eth, btc = markets
    keys = [open_position(protocol, traders[i], eth, i % 2 == 0, 1_000, 2 + i) for i in range(4)]
    book = PositionBook(Chain(settings, log, metrics), settings, log, metrics)
    book.start()
    cursor = book.cursor
    state = json.loads((settings.state_dir / STATE_FILE).read_text())
    assert state["cursor"] == cursor and len(state["positions"]) == 4
    assert not (settings.state_dir / (STATE_FILE + ".tmp")).exists()

    # while the keeper is down: changes to old positions, a close, new positions
    keys.append(open_position(protocol, traders[4], btc, False, 700, 6))
    open_position(protocol, traders[1], eth, False, 100, 5)
    decrease(protocol, traders[0], eth, True, onchain(protocol, keys[0])[0])
    decrease(protocol, traders[2], eth, True, 1_000 * WAD)
    chain.mine(3)

    client = Chain(settings, log, metrics)
    restarted = PositionBook(client, settings, log, metrics)
    restarted.start()
    # only the last reorg_depth blocks before the cursor were scanned again
    assert restarted.last_scan_from == max(cursor - settings.reorg_depth, protocol.deploy_block)
    assert_book_matches(restarted, protocol, keys)
    assert restarted.cursor == chain.blocks.head.number

    # restarting at once re-applies the window's events over the same state: no change
    again = PositionBook(client, settings, log, metrics)
    again.start()
    assert again.positions == restarted.positions


@pytest.mark.parametrize("longer, restart", [(True, False), (False, False), (True, True)],
                         ids=["new-branch-longer", "new-branch-shorter", "while-down"])
def test_book__reorg__undone_and_rescanned_from_before_the_fork(
    protocol, chain, keeper, traders, markets, fresh, settings, log, metrics, longer, restart
):
    eth, btc = markets
    keys = [
        open_position(protocol, traders[0], eth, True, 1_000, 5),
        open_position(protocol, traders[1], btc, False, 1_000, 5),
    ]
    book = PositionBook(Chain(settings, log, metrics), settings, log, metrics)
    book.start()
    snapshot = chain.snapshot()

    # the branch that will be dropped: a new position, a partial close, a top-up
    keys.append(open_position(protocol, traders[2], eth, False, 900, 7))
    decrease(protocol, traders[0], eth, True, 2_000 * WAD)
    protocol.perp.increase_position(btc, False, 50 * UNIT, 0, 0, sender=traders[1])
    chain.mine(2)
    book.sync()
    assert keys[2] in book.positions
    dropped_cursor = book.cursor

    # the branch that stays: other blocks at the same heights
    chain.restore(snapshot)
    keys.append(open_position(protocol, traders[3], btc, True, 400, 8))
    if longer:
        decrease(protocol, traders[1], btc, False, onchain(protocol, keys[1])[0])
        chain.mine(6)
        assert chain.blocks.head.number > dropped_cursor
    else:
        assert chain.blocks.head.number < dropped_cursor

    if restart:  # the reorg happened while the keeper was down: found from the saved hashes
        book = PositionBook(Chain(settings, log, metrics), settings, log, metrics)
        book.start()
    else:
        book.sync()
    assert metrics.get("reorgs") == 1
    assert book.last_scan_from == dropped_cursor - settings.reorg_depth > protocol.deploy_block  # not a rebuild
    assert_book_matches(book, protocol, keys)
    assert keys[2] not in book.positions
    assert book.cursor == chain.blocks.head.number


def test_book__reorg_older_than_every_kept_hash__rebuilt_from_the_deployment(
    protocol, traders, markets, fresh, settings, log, metrics
):
    eth, _ = markets
    keys = [open_position(protocol, traders[0], eth, True, 1_000, 5)]
    book = PositionBook(Chain(settings, log, metrics), settings, log, metrics)
    book.start()
    book.hashes = {b: "0x" + "00" * 32 for b in book.hashes}  # as if every kept block were gone
    keys.append(open_position(protocol, traders[1], eth, False, 1_000, 5))
    book.sync()
    assert book.last_scan_from == protocol.deploy_block
    assert_book_matches(book, protocol, keys)


def test_book__state_of_another_perp__ignored_and_rebuilt(protocol, traders, markets, fresh, settings, log,
                                                          metrics):
    eth, _ = markets
    keys = [open_position(protocol, traders[0], eth, True, 1_000, 5)]
    path = settings.state_dir / STATE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "chain_id": 31337, "perp": "0x" + "ab" * 20, "deploy_block": 1,
                                "cursor": 10**9, "hashes": {}, "positions": [], "undo": []}))
    book = PositionBook(Chain(settings, log, metrics), settings, log, metrics)
    book.start()
    assert book.last_scan_from == protocol.deploy_block
    assert_book_matches(book, protocol, keys)


def test_chunks__range_split_at_the_window_anchor():
    assert _chunks(1, 10, 4, 5) == [(1, 4), (5, 5), (6, 9), (10, 10)]
    assert _chunks(1, 10, 4, 0) == [(1, 4), (5, 8), (9, 10)]  # anchor before the range
    assert _chunks(5, 10, 100, 20) == [(5, 10)]  # anchor past it
