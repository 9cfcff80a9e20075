"""The price pusher's decisions, without a chain: when a push is due (first price,
heartbeat, deviation), what it carries (never an older timestamp, never one in the future),
moves beyond the Oracle's bounds (split or refused), and the quote checks (zero, absurd,
stale, cross-check). Hypothesis: split steps always stay within the Oracle's bounds at
strictly increasing timestamps."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from keepers.decide.prices import (
    ABSURD_PRICE,
    BPS,
    MAX_STEPS,
    WAD,
    Quote,
    Stored,
    cross_check,
    fmt_wad,
    plan_push,
    validate,
)

NOW = 1_700_000_000
ETH, BTC = 3_000 * WAD, 60_000 * WAD
JUMP = 1_000  # the local Oracle: 10 % per push
WINDOW, WINDOW_MOVE, MAX_AGE = 3_600, 4_000, 300


def plan(quotes, stored, now=NOW, heartbeat_s=60, deviation_bps=50, split=False, **kw):
    return plan_push(quotes, stored, now, heartbeat_s, deviation_bps, JUMP, split, **kw)


def fresh(price, age=10, **kw):
    return Stored(price, NOW - age, kw.get("ref", price), kw.get("start", NOW - age))


# ---------------------------------------------------------------- when a push is due


def test_plan__no_stored_price__pushes_every_market_at_once():
    p = plan({"ETH": Quote(ETH, NOW), "BTC": Quote(BTC, NOW)}, {"ETH": Stored(), "BTC": Stored()})
    assert len(p.pushes) == 1
    assert p.pushes[0].observed_at == NOW and p.pushes[0].prices == {"BTC": BTC, "ETH": ETH}
    assert "first price" in p.reason


def test_plan__fresh_and_unmoved__no_push_with_the_reason():
    p = plan({"ETH": Quote(ETH + ETH // 1_000, NOW)}, {"ETH": fresh(ETH, age=30)})
    assert p.pushes == () and p.refused == ()
    assert "fresh" in p.reason and "30 s" in p.reason and "10 bps" in p.reason


def test_plan__heartbeat_due__pushes_all_markets_in_one_call():
    stored = {"ETH": fresh(ETH, age=60), "BTC": fresh(BTC, age=5)}
    p = plan({"ETH": Quote(ETH, NOW), "BTC": Quote(BTC, NOW)}, stored)
    assert [push.prices for push in p.pushes] == [{"BTC": BTC, "ETH": ETH}]
    assert p.reason.startswith("heartbeat: ETH") and "60 s" in p.reason


def test_plan__heartbeat_one_second_short__no_push():
    p = plan({"ETH": Quote(ETH, NOW)}, {"ETH": fresh(ETH, age=59)})
    assert p.pushes == ()


def test_plan__deviation_reached__pushes_early_with_every_market():
    stored = {"ETH": fresh(ETH, age=5), "BTC": fresh(BTC, age=5)}
    moved = ETH * (BPS + 50) // BPS  # exactly the threshold
    p = plan({"ETH": Quote(moved, NOW), "BTC": Quote(BTC, NOW)}, stored)
    assert [push.prices for push in p.pushes] == [{"BTC": BTC, "ETH": moved}]
    assert p.reason == "deviation: ETH moved 50 bps (>= 50)"


def test_plan__deviation_one_wei_short__no_push():
    stored = {"ETH": fresh(ETH, age=5)}
    p = plan({"ETH": Quote(ETH * (BPS + 50) // BPS - 1, NOW)}, stored)
    assert p.pushes == ()


# ---------------------------------------------------------------- timestamps


def test_plan__quote_not_newer_than_stored__never_pushed_and_refused_with_reason():
    stored = {"ETH": Stored(ETH, NOW - 100, ETH, NOW - 100)}
    p = plan({"ETH": Quote(ETH * 2, NOW - 100)}, stored)
    assert p.pushes == ()
    assert [(r.market, r.kind) for r in p.refused] == [("ETH", "not_newer")]
    assert "never push an older or equal timestamp" in p.refused[0].reason


def test_plan__stored_newer_than_quote__refused_while_the_other_market_pushes():
    stored = {"ETH": Stored(ETH, NOW + 20, ETH, NOW + 20), "BTC": fresh(BTC, age=120)}
    p = plan({"ETH": Quote(ETH, NOW), "BTC": Quote(BTC, NOW)}, stored)
    assert [push.prices for push in p.pushes] == [{"BTC": BTC}]
    assert [(r.market, r.kind) for r in p.refused] == [("ETH", "not_newer")]


def test_plan__quote_from_the_future__refused():
    p = plan({"ETH": Quote(ETH, NOW + 1)}, {"ETH": Stored()})
    assert p.pushes == () and [r.kind for r in p.refused] == ["future"]


def test_plan__quotes_observed_at_different_times__one_call_at_a_time_every_market_fits():
    stored = {"ETH": fresh(ETH, age=100), "BTC": fresh(BTC, age=100)}
    p = plan({"ETH": Quote(ETH, NOW - 7), "BTC": Quote(BTC, NOW)}, stored)
    assert (
        len(p.pushes) == 1 and p.pushes[0].observed_at == NOW - 7
    )  # never later than ETH's observation
    assert set(p.pushes[0].prices) == {"ETH", "BTC"}


def test_plan__no_common_timestamp__latest_batch_now_the_other_deferred():
    stored = {
        "ETH": Stored(ETH, NOW - 100, ETH, NOW - 100),
        "BTC": Stored(BTC, NOW - 50, BTC, NOW - 50),
    }
    p = plan({"ETH": Quote(ETH, NOW - 60), "BTC": Quote(BTC, NOW)}, stored)
    assert [(push.observed_at, list(push.prices)) for push in p.pushes] == [(NOW, ["BTC"])]
    assert [(r.market, r.kind) for r in p.refused] == [("ETH", "deferred")]


# ---------------------------------------------------------------- the Oracle's bounds


def test_plan__move_within_the_jump_bound__one_push():
    target = ETH * (BPS + JUMP) // BPS
    p = plan({"ETH": Quote(target, NOW)}, {"ETH": fresh(ETH)})
    assert [push.prices for push in p.pushes] == [{"ETH": target}]


def test_plan__move_beyond_the_jump_bound_no_split__refused_with_an_alert_and_others_pushed():
    stored = {"ETH": fresh(ETH), "BTC": fresh(BTC)}
    target = ETH * (BPS + JUMP) // BPS + 1
    p = plan({"ETH": Quote(target, NOW), "BTC": Quote(BTC * 101 // 100, NOW)}, stored)
    assert [push.prices for push in p.pushes] == [{"BTC": BTC * 101 // 100}]
    assert [(r.market, r.kind) for r in p.refused] == [("ETH", "jump")]
    assert "beyond the Oracle's 1000 bps per push" in p.refused[0].reason


def test_plan__move_beyond_the_jump_bound_with_split__steps_within_bound_ending_at_the_target():
    target = ETH * 125 // 100  # +25 %: three steps of at most 10 %
    p = plan({"ETH": Quote(target, NOW)}, {"ETH": fresh(ETH, age=30)}, split=True)
    prices = [push.prices["ETH"] for push in p.pushes]
    stamps = [push.observed_at for push in p.pushes]
    assert prices == [3_300 * WAD, 3_630 * WAD, target]
    assert stamps == [NOW - 2, NOW - 1, NOW]
    assert p.refused == () and "split into 3 pushes" in p.notes[0]


def test_plan__split_on_heartbeat_of_an_unmoved_price__one_push_not_a_refusal():
    # found by the devnet simulation: with split_large_moves on, a heartbeat of the same
    # price had an empty step path and was refused as "no step fits", so the price went stale
    p = plan({"ETH": Quote(ETH, NOW)}, {"ETH": fresh(ETH, age=60)}, split=True)
    assert p.refused == ()
    assert [(push.observed_at, push.prices) for push in p.pushes] == [(NOW, {"ETH": ETH})]


def test_plan__split_with_no_room_between_timestamps__partial_steps_and_a_note():
    target = ETH * 125 // 100
    stored = {"ETH": Stored(ETH, NOW - 1, ETH, NOW - 1)}
    p = plan({"ETH": Quote(target, NOW)}, stored, heartbeat_s=1, split=True)
    assert [(push.observed_at, push.prices["ETH"]) for push in p.pushes] == [(NOW, 3_300 * WAD)]
    assert any("the rest next tick" in note for note in p.notes)


def test_plan__split_other_markets_land_with_the_last_step():
    stored = {"ETH": fresh(ETH, age=30), "BTC": fresh(BTC, age=30)}
    p = plan(
        {"ETH": Quote(ETH * 115 // 100, NOW), "BTC": Quote(BTC * 102 // 100, NOW)},
        stored,
        split=True,
    )
    assert [(push.observed_at, sorted(push.prices)) for push in p.pushes] == [
        (NOW - 1, ["ETH"]),
        (NOW, ["BTC", "ETH"]),
    ]


def test_plan__window_bound_no_split__refused():
    # anchored at 3000 this window; stored 3500 (+16.7 %); 3600 is +20 % from the anchor
    stored = {"ETH": Stored(3_500 * WAD, NOW - 10, ETH, NOW - 600)}
    p = plan(
        {"ETH": Quote(3_600 * WAD, NOW)},
        stored,
        max_price_age_s=MAX_AGE,
        window_s=WINDOW,
        max_window_move_bps=1_800,
    )
    assert p.pushes == () and [r.kind for r in p.refused] == ["window"]


def test_plan__window_bound_with_split__stops_at_the_window_edge():
    stored = {"ETH": Stored(3_900 * WAD, NOW - 10, ETH, NOW - 600)}  # +30 % of the window's 40 %
    p = plan(
        {"ETH": Quote(4_500 * WAD, NOW)},
        stored,
        split=True,
        max_price_age_s=MAX_AGE,
        window_s=WINDOW,
        max_window_move_bps=WINDOW_MOVE,
    )
    assert [push.prices["ETH"] for push in p.pushes] == [4_200 * WAD]  # 3000 * 1.4
    assert any("the rest next tick" in note for note in p.notes)


def test_plan__new_window_re_anchors_at_the_stored_price():
    stored = {"ETH": Stored(3_900 * WAD, NOW - 10, ETH, NOW - WINDOW)}  # the window ends at NOW
    p = plan(
        {"ETH": Quote(4_200 * WAD, NOW)},
        stored,
        max_price_age_s=MAX_AGE,
        window_s=WINDOW,
        max_window_move_bps=WINDOW_MOVE,
    )
    assert [push.prices["ETH"] for push in p.pushes] == [4_200 * WAD]


def test_plan__stored_price_stale__no_bound_the_move_lands_in_one_push():
    stored = {"ETH": Stored(ETH, NOW - MAX_AGE - 1, ETH, NOW - MAX_AGE - 1)}
    p = plan({"ETH": Quote(ETH * 14 // 10, NOW)}, stored, max_price_age_s=MAX_AGE)
    assert [push.prices for push in p.pushes] == [{"ETH": ETH * 14 // 10}] and p.refused == ()


# ---------------------------------------------------------------- quote checks


def test_validate__good_quote__no_problem():
    assert validate(Quote(ETH, NOW - 5), NOW, 30, fresh(ETH, age=20), market="ETH") == []


def test_validate__zero_price__refused():
    assert [p.kind for p in validate(Quote(0, NOW), NOW, 30, None, market="ETH")] == ["zero"]


def test_validate__absurd_price__refused():
    problems = validate(Quote(ABSURD_PRICE + 1, NOW), NOW, 30, None, market="ETH")
    assert [p.kind for p in problems] == ["absurd"] and "1e12" in problems[0].reason


def test_validate__above_the_oracle_maximum__refused():
    assert [p.kind for p in validate(Quote(2**96, NOW), NOW, 30, None)] == ["absurd"]


def test_validate__half_the_last_pushed_price_and_a_wei__absurd():
    assert validate(Quote(ETH // 2, NOW), NOW, 30, fresh(ETH)) == []
    problems = validate(Quote(ETH // 2 - 1, NOW), NOW, 30, fresh(ETH), market="ETH")
    assert [p.kind for p in problems] == ["absurd"] and "broken source" in problems[0].reason


def test_validate__stale_quote__refused():
    assert validate(Quote(ETH, NOW - 30), NOW, 30, None) == []
    problems = validate(Quote(ETH, NOW - 31), NOW, 30, None, market="ETH")
    assert [p.kind for p in problems] == ["stale"] and "31 s ago" in problems[0].reason


def test_validate__from_the_future__refused():
    assert [p.kind for p in validate(Quote(ETH, NOW + 1), NOW, 30, None)] == ["future"]


def test_validate__not_newer_than_stored__refused():
    stored = Stored(ETH, NOW, ETH, NOW)
    assert [p.kind for p in validate(Quote(ETH, NOW), NOW, 30, stored)] == ["not_newer"]


def test_cross_check__agreeing_within_the_bound__no_problem():
    primary = {"ETH": Quote(ETH, NOW)}
    assert cross_check(primary, {"ETH": Quote(ETH * 101 // 100, NOW - 3)}, 100) == []


def test_cross_check__disagreeing__refused_with_both_prices():
    problems = cross_check({"ETH": Quote(ETH, NOW)}, {"ETH": Quote(ETH * 102 // 100, NOW)}, 100)
    assert [(p.market, p.kind) for p in problems] == [("ETH", "disagreement")]
    assert (
        "3000" in problems[0].reason
        and "3060" in problems[0].reason
        and "200 bps" in problems[0].reason
    )


def test_cross_check__missing_in_check__refused():
    assert [p.kind for p in cross_check({"ETH": Quote(ETH, NOW)}, {}, 100)] == ["missing"]


def test_fmt_wad__exact():
    assert (
        fmt_wad(3_000_500_000_000_000_000_000) == "3000.5" and fmt_wad(1) == "0.000000000000000001"
    )


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(
    old=st.integers(min_value=10**6, max_value=10**11 * WAD),
    move=st.integers(min_value=-4_999, max_value=5_000),
    age=st.integers(min_value=1, max_value=299),
    jump=st.integers(min_value=1, max_value=5_000),
    windowed=st.booleans(),
    window_age=st.integers(min_value=0, max_value=4_000),
    ref_move=st.integers(min_value=-3_000, max_value=3_000),
)
def test_property__split_steps_stay_within_the_oracle_bounds(
    old, move, age, jump, windowed, window_age, ref_move
):
    target = max(old * (BPS + move) // BPS, 1)
    ref = max(old * (BPS + ref_move) // BPS, 1)
    start = NOW - window_age
    stored = {"ETH": Stored(old, NOW - age, ref, start)}
    kw = {"max_price_age_s": MAX_AGE}
    if windowed:
        kw.update(window_s=WINDOW, max_window_move_bps=max(jump, WINDOW_MOVE))
    p = plan_push({"ETH": Quote(target, NOW)}, stored, NOW, 1, 1, jump, True, **kw)
    price, last = old, NOW - age
    for push in p.pushes:
        assert last < push.observed_at <= NOW  # strictly increasing, never in the future
        step = push.prices["ETH"]
        assert abs(step - price) * BPS <= jump * price  # the Oracle's jump check, exactly
        if windowed:
            if push.observed_at >= start + WINDOW:
                ref, start = price, push.observed_at
            assert abs(step - ref) * BPS <= max(jump, WINDOW_MOVE) * ref
        price, last = step, push.observed_at
    assert len(p.pushes) <= MAX_STEPS
    if not windowed and p.pushes and len(p.pushes) < min(age, MAX_STEPS):
        assert price == target  # room left: the steps reach the target


@settings(max_examples=200, deadline=None)
@given(
    stored_ts=st.lists(
        st.integers(min_value=NOW - 400, max_value=NOW + 30), min_size=1, max_size=4
    ),
    quote_ts=st.lists(st.integers(min_value=NOW - 400, max_value=NOW + 30), min_size=4, max_size=4),
    split=st.booleans(),
)
def test_property__never_an_older_timestamp_never_the_future(stored_ts, quote_ts, split):
    names = ["A", "B", "C", "D"][: len(stored_ts)]
    stored = {m: Stored(ETH, t, ETH, t) for m, t in zip(names, stored_ts)}
    quotes = {m: Quote(ETH * 108 // 100, t) for m, t in zip(names, quote_ts)}
    p = plan_push(quotes, stored, NOW, 60, 50, 500, split)
    last = None
    for push in p.pushes:
        assert push.observed_at <= NOW
        assert last is None or push.observed_at > last
        for market in push.prices:
            assert push.observed_at > stored[market].observed_at
            assert push.observed_at <= quotes[market].observed_at
        last = push.observed_at
