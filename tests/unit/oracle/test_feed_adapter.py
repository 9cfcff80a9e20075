"""Oracle.latest_round_data and the OracleFeed adapter (Chainlink AggregatorV3 shape):
8 decimals rounded down, round id and timestamps = observation time, unknown markets."""

import ape
import pytest

from perpool import params

WAD = params.WAD
ETH, BTC, UNKNOWN = 1, 2, 3
FEED_DECIMALS = 8
MAX_PRICE = 2**96 - 1
PRICE = 3_000 * WAD + 123_456_789_987_654_321  # $3000.123456789987654321


def _to_feed(price):
    """WAD -> 8 decimals, rounded down."""
    return price // 10 ** (18 - FEED_DECIMALS)


@pytest.fixture
def eth_feed(project, oracle, deployer):
    return deployer.deploy(project.OracleFeed, oracle.address, ETH)


# ---------------------------------------------------------------- Oracle.latest_round_data


def test_latest_round_data__after_push__8_decimals_rounded_down_and_observation_times(
    oracle, push, t0
):
    assert PRICE % 10 ** (18 - FEED_DECIMALS) != 0  # the rounding shows
    observed = t0 - 5
    push(oracle, ETH, PRICE, observed, at=t0)

    round_id, answer, started_at, updated_at, answered_in = oracle.latest_round_data(ETH)

    assert answer == _to_feed(PRICE)
    assert answer * 10 ** (18 - FEED_DECIMALS) < PRICE  # down, not to nearest or up
    assert round_id == answered_in == observed  # the observation, not the block time
    assert started_at == updated_at == observed


def test_latest_round_data__later_push__round_id_grows(oracle, push, t0):
    push(oracle, ETH, PRICE, t0)
    first = oracle.latest_round_data(ETH)[0]

    push(oracle, ETH, PRICE + WAD, t0 + 7)

    round_id, answer, *_ = oracle.latest_round_data(ETH)
    assert round_id == t0 + 7 > first
    assert answer == _to_feed(PRICE + WAD)


def test_latest_round_data__price_below_one_feed_unit__answers_zero(oracle, push, t0):
    price = 10 ** (18 - FEED_DECIMALS) - 1

    push(oracle, ETH, price, t0)

    assert oracle.latest_round_data(ETH)[1] == 0


def test_latest_round_data__largest_price__answers_it_scaled(oracle, push, t0):
    push(oracle, ETH, MAX_PRICE, t0)

    assert oracle.latest_round_data(ETH)[1] == _to_feed(MAX_PRICE)


def test_latest_round_data__stale_price__answers_without_reverting(oracle, push, mine_at, t0):
    push(oracle, ETH, PRICE, t0)
    mine_at(t0 + oracle.config().max_price_age + 1)
    assert oracle.is_stale(ETH)

    assert tuple(oracle.latest_round_data(ETH)) == (t0, _to_feed(PRICE), t0, t0, t0)


def test_latest_round_data__registered_market_never_pushed__answers_zeros(oracle):
    assert tuple(oracle.latest_round_data(BTC)) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("market", [0, UNKNOWN])
def test_latest_round_data__unknown_market__reverts(oracle, market):
    with ape.reverts("oracle: unknown market"):
        oracle.latest_round_data(market)

    assert not oracle.is_market(market)


# ---------------------------------------------------------------- OracleFeed


def test_oracle_feed__deploy__describes_market(eth_feed, oracle):
    assert eth_feed.oracle() == oracle.address
    assert eth_feed.market() == ETH
    assert eth_feed.decimals() == FEED_DECIMALS
    assert eth_feed.version() == 1
    assert eth_feed.description() == f"{oracle.market_names(ETH)} / USD"


def test_oracle_feed__longest_market_name__fits_description(project, oracle, deployer):
    name = "ABCDEFGHIJKLMNOP"  # 16 characters, the longest market name
    market = oracle.add_market(name, sender=deployer).return_value

    feed = deployer.deploy(project.OracleFeed, oracle.address, market)

    assert feed.description() == name + " / USD"


def test_oracle_feed__latest_round_data__matches_oracle_price(eth_feed, oracle, push, t0):
    push(oracle, ETH, PRICE, t0)

    assert tuple(eth_feed.latestRoundData()) == (t0, _to_feed(PRICE), t0, t0, t0)
    assert tuple(eth_feed.latestRoundData()) == tuple(oracle.latest_round_data(ETH))


def test_oracle_feed__before_first_push__answers_zeros(eth_feed):
    assert tuple(eth_feed.latestRoundData()) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize("market", [0, UNKNOWN])
def test_oracle_feed__deploy_for_unknown_market__reverts(project, oracle, deployer, market):
    with ape.reverts("oracle: unknown market"):
        deployer.deploy(project.OracleFeed, oracle.address, market)

    assert oracle.market_count() == BTC
    assert not oracle.is_market(market)


def test_oracle_feed__as_reference_of_another_oracle__bounds_and_backs_its_prices(
    create_oracle, oracle, eth_feed, push, mine_at, calc, deployer, t0
):
    downstream = create_oracle()
    downstream.set_reference_feed(ETH, eth_feed, 600, sender=deployer)
    assert tuple(downstream.reference_feed(ETH)) == (eth_feed.address, 600, FEED_DECIMALS)
    cfg = downstream.config()
    push(oracle, ETH, PRICE, t0)
    reference = calc.scale(_to_feed(PRICE), FEED_DECIMALS)
    beyond = reference + calc.max_delta(reference, cfg.max_deviation_bps) + 1

    with ape.reverts("oracle: reference deviation"):
        push(downstream, ETH, beyond, t0)
    assert downstream.price_data(ETH).price == 0

    mine_at(t0 + 1)
    assert downstream.get_exit_price(ETH, True) == calc.spread_max(
        reference, cfg.fallback_spread_bps
    )
    assert downstream.get_exit_price(ETH, False) == calc.spread_min(
        reference, cfg.fallback_spread_bps
    )


def test_oracle_feed__upstream_price_older_than_reference_age__downstream_push_reverts_stale(
    create_oracle, oracle, eth_feed, push, deployer, t0
):
    downstream = create_oracle()
    downstream.set_reference_feed(ETH, eth_feed, 600, sender=deployer)
    push(oracle, ETH, PRICE, t0)

    with ape.reverts("oracle: reference stale"):
        push(downstream, ETH, PRICE, t0 + 601, at=t0 + 601)

    assert downstream.price_data(ETH).price == 0
