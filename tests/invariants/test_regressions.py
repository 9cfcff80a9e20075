"""Counterexamples the invariant machines found, replayed as fixed programs (`machines.replay`:
the same rules and every invariant after each step, deterministic, 6- and 18-decimal
collateral).

- `test_regression__funding_between_two_observations__...`: the first version of the
  funding invariant compared, between two consecutive observations, the receivers' index
  rise x their open interest with the payers' fall x theirs. The contracts were right and
  the invariant wrong: the receivers' index is floor(paid since the market's last update x
  payer OI / receiver OI), so a difference of two such floors can exceed the exact share by
  one wei per USD. The invariant now measures from the market's last update (and in token
  units over every position ever); this test pins both facts.
- `test_regression__pnl_cap_binds__*`: a finding in the contracts. While the pool value's
  trader-pnl cap binds, the counted liability is a fraction f of the pool amount, so a
  deposit of X lowered the share price (the depositor kept X (V + (1 - f) X) / (V + X)) and
  a redeem raised it beyond its fee (a run: the redeemer leaves with a share of a value
  that ignores the profit above the cap). The Vault now re-reads the pool value after its
  writes and refuses both ("vault: deposit would dilute", "vault: redeem beyond its
  share"); these tests replay the counterexample
  and show the refusal, what the flow would have done, and that the flow passes once the
  cap no longer binds.
"""

from __future__ import annotations

import pytest

from machines import LpTradingMachine, replay

import invariant_kit as K

WAD = K.WAD


def _pay_rate(cfg, long_usd: int, short_usd: int) -> int:
    skew = abs(long_usd - short_usd)
    return min(K.mul_div(cfg.funding_factor, skew, long_usd + short_usd, True), cfg.max_funding_rate)


def test_regression__funding_between_two_observations__received_may_exceed_paid_by_a_floor(world):
    long_usd, short_usd = 10_000 * WAD + 7, 3_000 * WAD
    eth = world.markets[0]
    cfg = world.rpc.call(world.conf, "configs", eth)
    pay = _pay_rate(cfg, long_usd, short_usd)

    def received(t):  # per USD of the shorts, t seconds after the last update
        return K.received_per_usd(pay * t, long_usd, short_usd)

    # the first pair of waits whose second window's floor drops back (frac(a0) > frac(a1))
    dt0, dt1 = next(
        (a, b) for a in range(1, 120) for b in range(1, 120)
        if short_usd * (received(a + b) - received(a)) > long_usd * pay * b
    )
    program = [
        ("increase", dict(pick=0 * 5 + 4, coll=1_000, lev=10, dust=7, accept="any")),  # key 0: trader 0 long ETH, $10,000 + 7 wei
        ("increase", dict(pick=5 * 5 + 4, coll=1_000, lev=3, dust=0, accept="any")),  # key 5: trader 1 short ETH, $3,000
        ("time_passes", dict(dt=dt0, fresh=True, drift=0)),
        ("time_passes", dict(dt=dt1, fresh=True, drift=0)),
    ]
    seen = {}

    def check(m, i):
        o = m.current()
        seen[i] = (o[("idx", eth)], o[("oi", eth, True)][0], o[("oi", eth, False)][0])

    replay(LpTradingMachine, world, program, check)
    (i1, L, S), (i2, _, _), (i3, _, _) = seen[1], seen[2], seen[3]
    assert (L, S) == (long_usd, short_usd)
    # between the two observations the receivers gained more than the payers paid...
    window_paid = L * (i2.funding_long - i3.funding_long)
    window_received = S * (i3.funding_short - i2.funding_short)
    assert window_received > window_paid
    # ...by less than one wei per USD of the receivers, and never since the last update
    assert window_received - window_paid < S
    assert S * (i3.funding_short - i1.funding_short) <= L * (i1.funding_long - i3.funding_long)


# ---------------------------------------------------------------- the pnl cap


def _replay_capped(world, lp_steps):
    """The pool value's trader-pnl cap (`max_pnl_factor_bps`) set to 1 % of the pool amount,
    a $200,000 ETH long, ETH +9.5 %: the long's profit (~$18,000) exceeds the cap
    (~$10,000), so the pool value counts only the cap. Then `lp_steps`. Returns, per LP
    step, the observation before it, the one after, the step record and whether the cap
    bound before it."""
    from machines import RiskMachine

    program = [
        ("time_passes", dict(dt=901, fresh=True, drift=0)),  # the LPs' cooldown ends
        ("set_max_pnl_factor", dict(value=100, stranger=False)),
        ("increase", dict(pick=0 * 5 + 4, coll=20_000, lev=10, dust=0, accept="any")),  # key 0: long ETH
        ("big_move", dict(mi=0, move=950)),
        *lp_steps,
    ]
    first = len(program) - len(lp_steps)
    seen = []

    def check(m, i):
        if i >= first:
            seen.append(dict(
                pre=m.step.pre, post=m.current(), step=m.step,
                capped=m.pool_value(m.step.pre, True)[1], machine=m,
            ))

    replay(RiskMachine, world, program, check)
    return seen


def test_regression__pnl_cap_binds__deposit_refused_it_would_lower_the_share_price(world):
    (s,) = _replay_capped(world, [("deposit", dict(who=1, amount=500_000, dust=0))])
    assert s["capped"]
    assert s["step"].refused == "vault: deposit would dilute"
    assert s["post"] == s["pre"]  # nothing moved (the machine checks it too)
    # what the deposit would have done: the counted liability grows by 1 % of it, so the
    # pool value grows by 99 % of the deposit while the shares were priced at 100 %
    pre = s["pre"]
    V, S = pre[("pv", True)], pre["totalSupply"]
    scale = world.scale
    units = 500_000 * world.unit
    fee = K.bps_of(units, world.mint_fee_bps, True)
    shares = K.mul_div((units - fee) * scale, S, V)
    V2, still_capped = s["machine"].pool_value({**pre, "pool_amount": pre["pool_amount"] + units}, True)
    assert still_capped and V2 - V < units * scale
    assert V2 * S < V * (S + shares)  # the share price would have fallen
    # the depositor would have held less than it paid, beyond its mint fee
    assert K.mul_div(shares, V2, S + shares) < (units - fee) * scale


def test_regression__pnl_cap_binds__redeem_refused_it_would_raise_the_price_beyond_its_fee(world):
    (s,) = _replay_capped(world, [("redeem", dict(who=0, frac=0.5))])
    assert s["capped"]
    assert s["step"].refused == "vault: redeem beyond its share"
    assert s["post"] == s["pre"]


def test_regression__pnl_cap_binds__lp_flows_pass_once_the_cap_no_longer_binds(world):
    """The same state, then the price back down: the profit falls under the cap and the
    same deposit and redeem pass at the documented formulas (the machine predicts them)."""
    seen = _replay_capped(world, [
        ("big_move", dict(mi=0, move=-900)),
        ("deposit", dict(who=1, amount=500_000, dust=0)),
        ("redeem", dict(who=0, frac=0.5)),
    ])
    _, dep, red = seen
    assert not dep["capped"] and dep["step"].refused is None
    assert dep["post"]["totalSupply"] > dep["pre"]["totalSupply"]
    assert not red["capped"] and red["step"].refused is None
    assert red["post"]["totalSupply"] < red["pre"]["totalSupply"]
