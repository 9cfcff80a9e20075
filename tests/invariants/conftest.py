"""Fixtures of the stateful invariant machines (tests/invariants).

Reuses the Perp suites' deploy helper and reference model (tests/unit/perp/helpers.py), so
tests/unit/perp goes on sys.path here, as tests/e2e does. The terminal summary reports how
many machine steps ran.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_PERP_TESTS = _HERE.parents[0] / "unit" / "perp"
for _p in (_PERP_TESTS, _HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import pytest  # noqa: E402

import invariant_kit as K  # noqa: E402
from helpers import build_env, fast_reverts  # noqa: E402,F401  (module-scoped autouse: quick reverts)
from machines import DECIMALS, World  # noqa: E402
from perpool import params  # noqa: E402


@pytest.fixture(scope="module", params=DECIMALS, ids=[f"{d}dec" for d in DECIMALS])
def world(request, project, deployer, keeper, lp, other_lp, attacker, accounts, chain) -> World:
    decimals = request.param
    env = build_env(project, deployer, keeper, lp, chain, decimals, risk_config=dict(params.RISK_CONFIG))
    traders = (accounts[4], accounts[7], accounts[8])
    liquidators = (accounts[6], accounts[9])
    for a in (*traders, lp, other_lp, attacker):
        env.fund(a, 100_000_000)  # never the limit: a program spends at most a few million
    rpc = K.Rpc(chain.provider.web3)
    w = World(
        label="",
        rpc=rpc,
        token=K.Contract(env.token, "token"),
        vault=K.Contract(env.vault, "vault"),
        perp=K.Contract(env.perp, "perp"),
        conf=K.Contract(env.configurator, "configurator"),
        oracle=K.Contract(env.oracle, "oracle"),
        risk=K.Contract(env.risk, "risk"),
        chain=chain,
        scale=env.scale,
        unit=env.unit,
        markets=tuple(env.markets.values()),
        seed_prices={env.markets[n]: p for n, p in params.LOCAL_MARKETS.items()},
        admin=deployer.address.lower(),
        keeper=keeper.address.lower(),
        lps=(lp.address.lower(), other_lp.address.lower()),
        traders=tuple(a.address.lower() for a in traders),
        liquidators=tuple(a.address.lower() for a in liquidators),
        attacker=attacker.address.lower(),
    )
    w.oracle_cfg = rpc.call(w.oracle, "config")
    w.mint_fee_bps = rpc.call(w.vault, "mint_fee_bps")
    w.burn_fee_bps = rpc.call(w.vault, "burn_fee_bps")
    w.cooldown = rpc.call(w.vault, "cooldown")
    w.orders = K.Contract(env.orders, "orders")
    w.min_fee = rpc.call(w.orders, "min_execution_fee")
    w.timeout = rpc.call(w.orders, "timeout")
    w.expiry = rpc.call(w.orders, "expiry")
    w.decimals = decimals
    return w


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    invariant_kit = K
    if invariant_kit.STEPS:
        total = sum(invariant_kit.STEPS.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(invariant_kit.STEPS.items()))
        terminalreporter.write_line(f"invariant steps executed: {total} ({detail})")
        if config.getoption("verbose") > 0 or config.getoption("capture") == "no":
            for label, stats in sorted(invariant_kit.STATS.items()):
                terminalreporter.write_line(f"{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
