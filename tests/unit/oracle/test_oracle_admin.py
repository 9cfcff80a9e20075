"""Admin surface of the Oracle: deployment, add_market, set_updater, set_config (every
field against its hard bound), set_reference_feed, the two-step admin transfer."""

import ape
import pytest
import rlp
from eth_utils import keccak, to_bytes, to_checksum_address

from perpool import params

WAD = params.WAD
ZERO = ape.utils.ZERO_ADDRESS
ETH, BTC, UNKNOWN = 1, 2, 3
MAX_REFERENCE_AGE = 172_800  # documented hard bound of set_reference_feed (s)

# The documented hard bounds of OracleConfig (Oracle.vy, "hard bounds on every setting").
ALL_MAX = {
    "max_price_age": 86_400,
    "max_future_skew": 300,
    "window": 86_400,
    "spread_duration": 86_400,
    "max_jump_bps": 5_000,
    "max_window_move_bps": 9_000,
    "spread_threshold_bps": 5_000,
    "spread_bps": 500,
    "max_deviation_bps": 5_000,
    "fallback_spread_bps": 1_000,
}
ALL_MIN = {
    "max_price_age": 10,
    "max_future_skew": 0,
    "window": 60,
    "spread_duration": 0,
    "max_jump_bps": 1,
    "max_window_move_bps": 1,  # may not be below max_jump_bps
    "spread_threshold_bps": 1,
    "spread_bps": 0,
    "max_deviation_bps": 1,
    "fallback_spread_bps": 0,
}
# (field, refused value): one past each upper bound, and the lower bound where one exists
BAD_VALUES = [
    ("max_price_age", ALL_MIN["max_price_age"] - 1),
    ("max_price_age", ALL_MAX["max_price_age"] + 1),
    ("max_future_skew", ALL_MAX["max_future_skew"] + 1),
    ("window", ALL_MIN["window"] - 1),
    ("window", ALL_MAX["window"] + 1),
    ("spread_duration", ALL_MAX["spread_duration"] + 1),
    ("max_jump_bps", 0),
    ("max_jump_bps", ALL_MAX["max_jump_bps"] + 1),
    ("max_window_move_bps", 0),
    ("max_window_move_bps", params.ORACLE_CONFIG["max_jump_bps"] - 1),  # below the jump
    ("max_window_move_bps", ALL_MAX["max_window_move_bps"] + 1),
    ("spread_threshold_bps", 0),
    ("spread_threshold_bps", ALL_MAX["spread_threshold_bps"] + 1),
    ("spread_bps", ALL_MAX["spread_bps"] + 1),
    ("max_deviation_bps", 0),
    ("max_deviation_bps", ALL_MAX["max_deviation_bps"] + 1),
    ("fallback_spread_bps", ALL_MAX["fallback_spread_bps"] + 1),
]


def _create_address(sender: str, nonce: int) -> str:
    """The address a CREATE from `sender` at `nonce` deploys to."""
    return to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=sender), nonce]))[12:])


def _bad_id(case):
    return f"{case[0]}={case[1]}"


# ---------------------------------------------------------------- deployment


def test_deploy__sets_deployer_admin_and_config_and_logs(project, chain, deployer):
    address = _create_address(deployer.address, deployer.nonce)

    oracle = deployer.deploy(project.Oracle, dict(params.ORACLE_CONFIG))

    assert oracle.address == address  # (checks the helper the refusal tests rely on)
    assert len(chain.provider.get_code(address)) > 0

    assert oracle.admin() == deployer
    assert oracle.pending_admin() == ZERO
    assert oracle.market_count() == 0
    assert dict(oracle.config().items()) == params.ORACLE_CONFIG
    events = chain.provider.get_receipt(oracle.txn_hash).events
    transferred = [e for e in events if e.event_name == "AdminTransferred"]
    assert len(transferred) == 1
    assert transferred[0].previous_admin == ZERO
    assert transferred[0].admin == deployer
    [config_set] = [e for e in events if e.event_name == "ConfigSet"]
    assert {k: config_set[k] for k in params.ORACLE_CONFIG} == params.ORACLE_CONFIG


@pytest.mark.parametrize("case", BAD_VALUES[:2] + BAD_VALUES[-1:], ids=_bad_id)
def test_deploy__bad_config__reverts(project, chain, deployer, case):
    field, value = case
    address = _create_address(deployer.address, deployer.nonce)

    with ape.reverts(f"oracle: bad {field}"):
        deployer.deploy(project.Oracle, {**params.ORACLE_CONFIG, field: value})

    assert deployer.nonce > 0
    assert len(chain.provider.get_code(address)) == 0  # no contract was created


# ---------------------------------------------------------------- not admin


NOT_ADMIN_CALLS = {
    "add_market": lambda o, s: o.add_market("SOL", sender=s),
    "set_updater": lambda o, s: o.set_updater(s, True, sender=s),
    "set_config": lambda o, s: o.set_config(ALL_MAX, sender=s),
    "set_reference_feed": lambda o, s: o.set_reference_feed(ETH, ZERO, 0, sender=s),
    "transfer_admin": lambda o, s: o.transfer_admin(s, sender=s),
}


@pytest.mark.parametrize("call", NOT_ADMIN_CALLS.values(), ids=NOT_ADMIN_CALLS.keys())
@pytest.mark.parametrize("role", ["attacker", "keeper"])
def test_admin_function__called_by_non_admin__reverts(oracle, snapshot, request, call, role):
    sender = request.getfixturevalue(role)
    before = snapshot(oracle)

    with ape.reverts("oracle: not admin"):
        call(oracle, sender)

    assert snapshot(oracle) == before
    assert oracle.updaters(sender) == (role == "keeper")


# ---------------------------------------------------------------- add_market


def test_add_market__by_admin__registers_next_id_and_logs(oracle, deployer):
    name = "SOL-PERP-LONGNME"  # the longest allowed name: 16 characters
    assert len(name) == 16
    count = oracle.market_count()

    tx = oracle.add_market(name, sender=deployer)

    market = count + 1
    assert tx.return_value == market
    assert oracle.market_count() == market
    assert oracle.market_names(market) == name
    assert oracle.is_market(market)
    assert tuple(oracle.price_data(market)) == (0, 0, 0, 0, 0)
    assert tuple(oracle.reference_feed(market)) == (ZERO, 0, 0)
    [event] = tx.decode_logs(oracle.MarketAdded)
    assert (event.market, event.name) == (market, name)


def test_add_market__duplicate_name__gets_its_own_id(oracle, deployer):
    name = oracle.market_names(ETH)

    tx = oracle.add_market(name, sender=deployer)

    assert tx.return_value == BTC + 1
    assert oracle.market_names(BTC + 1) == oracle.market_names(ETH)
    assert oracle.is_market(ETH) and oracle.is_market(BTC + 1)


def test_add_market__empty_name__reverts(oracle, snapshot, deployer):
    before = snapshot(oracle)

    with ape.reverts("oracle: empty name"):
        oracle.add_market("", sender=deployer)

    assert snapshot(oracle) == before


# ---------------------------------------------------------------- set_updater


def test_set_updater__grant_then_revoke__toggles_and_logs(oracle, deployer, attacker):
    assert not oracle.updaters(attacker)

    granted = oracle.set_updater(attacker, True, sender=deployer)
    assert oracle.updaters(attacker)
    [event] = granted.decode_logs(oracle.UpdaterSet)
    assert (event.account, event.allowed) == (attacker, True)

    revoked = oracle.set_updater(attacker, False, sender=deployer)
    assert not oracle.updaters(attacker)
    [event] = revoked.decode_logs(oracle.UpdaterSet)
    assert (event.account, event.allowed) == (attacker, False)


def test_set_updater__zero_address__reverts(oracle, snapshot, deployer):
    before = snapshot(oracle)

    with ape.reverts("oracle: zero address"):
        oracle.set_updater(ZERO, True, sender=deployer)

    assert snapshot(oracle) == before
    assert not oracle.updaters(ZERO)


# ---------------------------------------------------------------- set_config


@pytest.mark.parametrize("bounds", [ALL_MAX, ALL_MIN], ids=["all_max", "all_min"])
def test_set_config__every_field_at_its_hard_bound__stored_and_logged(oracle, deployer, bounds):
    tx = oracle.set_config(bounds, sender=deployer)

    assert dict(oracle.config().items()) == bounds  # also: no packed field overlaps another
    [event] = tx.decode_logs(oracle.ConfigSet)
    assert {k: event[k] for k in bounds} == bounds


@pytest.mark.parametrize("case", BAD_VALUES, ids=_bad_id)
def test_set_config__field_out_of_bounds__reverts(oracle, snapshot, deployer, case):
    field, value = case
    before = snapshot(oracle)

    with ape.reverts(f"oracle: bad {field}"):
        oracle.set_config({**params.ORACLE_CONFIG, field: value}, sender=deployer)

    assert snapshot(oracle) == before


def test_set_config__new_max_price_age__governs_staleness(oracle, push, mine_at, deployer, t0):
    new_age = params.ORACLE_CONFIG["max_price_age"] * 2
    oracle.set_config({**params.ORACLE_CONFIG, "max_price_age": new_age}, sender=deployer)
    push(oracle, ETH, 3_000 * WAD, t0)

    mine_at(t0 + new_age)
    assert oracle.get_price(ETH, True) == 3_000 * WAD

    mine_at(t0 + new_age + 1)
    with ape.reverts("oracle: stale price"):
        oracle.get_price(ETH, True)


# ---------------------------------------------------------------- set_reference_feed


def test_set_reference_feed__feed_with_decimals__stored_and_logged(oracle, create_feed, deployer):
    feed = create_feed(6)

    tx = oracle.set_reference_feed(BTC, feed, 600, sender=deployer)

    assert tuple(oracle.reference_feed(BTC)) == (feed.address, 600, 6)
    assert tuple(oracle.reference_feed(ETH)) == (ZERO, 0, 0)
    assert oracle.is_market(BTC)
    [event] = tx.decode_logs(oracle.ReferenceFeedSet)
    assert (event.market, event.feed, event.max_age, event.decimals) == (BTC, feed, 600, 6)


def test_set_reference_feed__max_age_at_hard_bound_and_18_decimals__accepted(
    oracle, create_feed, deployer
):
    feed = create_feed(18)

    oracle.set_reference_feed(ETH, feed, MAX_REFERENCE_AGE, sender=deployer)

    assert tuple(oracle.reference_feed(ETH)) == (feed.address, MAX_REFERENCE_AGE, 18)


def test_set_reference_feed__remove__clears_and_logs(feed_oracle, deployer):
    tx = feed_oracle.set_reference_feed(ETH, ZERO, 0, sender=deployer)

    assert tuple(feed_oracle.reference_feed(ETH)) == (ZERO, 0, 0)
    assert feed_oracle.is_market(ETH)
    [event] = tx.decode_logs(feed_oracle.ReferenceFeedSet)
    assert (event.market, event.feed, event.max_age, event.decimals) == (ETH, ZERO, 0, 0)


def test_set_reference_feed__replace_and_remove__keep_spread_until(
    oracle, push, create_feed, calc, deployer, chain, t0
):
    cfg = oracle.config()
    feed = create_feed(8)
    push(oracle, ETH, 3_000 * WAD, t0)
    trigger = 3_000 * WAD + calc.max_delta(3_000 * WAD, cfg.spread_threshold_bps) + 1
    push(oracle, ETH, 3_000 * WAD * 101 // 100, t0 + 1)  # two pushes: each within the jump bound
    push(oracle, ETH, trigger, t0 + 2)
    until = oracle.price_data(ETH).spread_until
    assert until == t0 + 2 + cfg.spread_duration
    price_before = tuple(oracle.price_data(ETH))

    chain.pending_timestamp = t0 + 2
    oracle.set_reference_feed(ETH, feed, 600, sender=deployer)
    assert tuple(oracle.price_data(ETH)) == price_before
    assert tuple(oracle.reference_feed(ETH)) == (feed.address, 600, 8)

    oracle.set_reference_feed(ETH, ZERO, 0, sender=deployer)
    assert tuple(oracle.price_data(ETH)) == price_before
    assert oracle.is_market(ETH)


@pytest.mark.parametrize("max_age", [0, MAX_REFERENCE_AGE + 1])
def test_set_reference_feed__feed_with_bad_max_age__reverts(
    feed_oracle, create_feed, snapshot, deployer, max_age
):
    feed = create_feed(8)
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: bad reference age"):
        feed_oracle.set_reference_feed(ETH, feed, max_age, sender=deployer)

    assert snapshot(feed_oracle) == before


def test_set_reference_feed__removal_with_nonzero_max_age__reverts(
    feed_oracle, snapshot, deployer
):
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: bad reference age"):
        feed_oracle.set_reference_feed(ETH, ZERO, 1, sender=deployer)

    assert snapshot(feed_oracle) == before


def test_set_reference_feed__feed_with_19_decimals__reverts(
    feed_oracle, create_feed, snapshot, deployer
):
    feed = create_feed(19)
    before = snapshot(feed_oracle)

    with ape.reverts("oracle: bad reference decimals"):
        feed_oracle.set_reference_feed(ETH, feed, 600, sender=deployer)

    assert snapshot(feed_oracle) == before


@pytest.mark.parametrize("market", [0, UNKNOWN])
def test_set_reference_feed__unknown_market__reverts(
    oracle, ref_feed, snapshot, deployer, market
):
    before = snapshot(oracle)

    with ape.reverts("oracle: unknown market"):
        oracle.set_reference_feed(market, ref_feed, 600, sender=deployer)

    assert snapshot(oracle) == before


# ---------------------------------------------------------------- admin transfer


def test_transfer_admin__by_admin__sets_pending_and_logs(oracle, deployer, attacker):
    tx = oracle.transfer_admin(attacker, sender=deployer)

    assert oracle.admin() == deployer  # nothing changes hands before acceptance
    assert oracle.pending_admin() == attacker
    [event] = tx.decode_logs(oracle.AdminTransferStarted)
    assert (event.admin, event.pending_admin) == (deployer, attacker)


def test_accept_admin__by_pending_admin__transfers_and_logs(oracle, deployer, accounts):
    new_admin = accounts[7]
    oracle.transfer_admin(new_admin, sender=deployer)

    tx = oracle.accept_admin(sender=new_admin)

    assert oracle.admin() == new_admin
    assert oracle.pending_admin() == ZERO
    [event] = tx.decode_logs(oracle.AdminTransferred)
    assert (event.previous_admin, event.admin) == (deployer, new_admin)


def test_accept_admin__after_transfer__old_admin_loses_rights_new_admin_gains_them(
    oracle, snapshot, deployer, accounts
):
    new_admin = accounts[7]
    oracle.transfer_admin(new_admin, sender=deployer)
    oracle.accept_admin(sender=new_admin)
    before = snapshot(oracle)

    with ape.reverts("oracle: not admin"):
        oracle.add_market("SOL", sender=deployer)
    assert snapshot(oracle) == before

    oracle.add_market("SOL", sender=new_admin)
    assert oracle.market_count() == BTC + 1


def test_admin_function__called_by_pending_admin_before_accepting__reverts(
    oracle, snapshot, deployer, accounts
):
    new_admin = accounts[7]
    oracle.transfer_admin(new_admin, sender=deployer)
    before = snapshot(oracle)

    with ape.reverts("oracle: not admin"):
        oracle.add_market("SOL", sender=new_admin)

    assert snapshot(oracle) == before


def test_accept_admin__by_other_than_pending__reverts(
    oracle, snapshot, deployer, attacker, accounts
):
    oracle.transfer_admin(accounts[7], sender=deployer)
    before = snapshot(oracle)

    with ape.reverts("oracle: not pending admin"):
        oracle.accept_admin(sender=attacker)

    assert snapshot(oracle) == before


@pytest.mark.parametrize("role", ["attacker", "deployer"])
def test_accept_admin__nothing_pending__reverts(oracle, snapshot, request, role):
    before = snapshot(oracle)

    with ape.reverts("oracle: not pending admin"):
        oracle.accept_admin(sender=request.getfixturevalue(role))

    assert snapshot(oracle) == before


def test_transfer_admin__to_zero_address__cancels_pending_transfer(
    oracle, snapshot, deployer, accounts
):
    oracle.transfer_admin(accounts[7], sender=deployer)
    tx = oracle.transfer_admin(ZERO, sender=deployer)
    assert oracle.pending_admin() == ZERO
    [event] = tx.decode_logs(oracle.AdminTransferStarted)
    assert (event.admin, event.pending_admin) == (deployer, ZERO)
    before = snapshot(oracle)

    with ape.reverts("oracle: not pending admin"):
        oracle.accept_admin(sender=accounts[7])

    assert snapshot(oracle) == before
