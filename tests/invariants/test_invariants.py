"""Stateful invariants (issue #8): hypothesis state machines over the real contracts on Anvil.

Two machines (tests/invariants/machines.py), each run with 6- and 18-decimal collateral:

- `LpTradingMachine`: LP deposit, redeem, donation and insurance top-up; LP deposit and
  redeem orders (placed, executed by the keeper or a stranger, cancelled by the owner or
  anyone, credits claimed, the direct flows turned off and on); open, increase, add and
  remove collateral, decrease, close; oracle pushes within and beyond the bounds, zero,
  stale, future, not newer, by a stranger; time passing (with or without a fresh push).
- `RiskMachine`: the same, plus liquidation (single and batch) of any position, ADL of any
  position (and a stranger calling Perp.adl_decrease), bounded market and risk config
  changes (inside and just outside every bound, by the admin and a stranger), the pool
  value's pnl cap, pause and unpause, keeper fee claims. It starts from a few leveraged
  positions and sometimes a low ADL trigger, so liquidation and ADL have material.

Every step predicts its outcome from the documented formulas (the exact refusal reason, or
the exact position change and bucket flows) and checks it; after every step the invariants
run (the `inv_*` methods of `machines.Base`): solvency; aggregates = Σ positions; positions
as logged; money moves only by the modelled flows; a refusal changes nothing; the pool
value equals its formula; indices; funding conserved; no stale price used; no zero-share
mint; LP share price vs deposits, redeems (direct or LP orders' fills, fill by fill) and
donations; LP orders' escrow, shares and credits, stored as placed, decided as predicted and
never filled without a newer price in every market; the health function; pause flags.

Each example runs in its own chain snapshot (taken in the machine's `__init__`, restored in
its `teardown`: Ape isolates per test, not per example), with pinned block times.

Profiles (`PERPOOL_INVARIANT_PROFILE`, default `ci`):

- ci:   at least 3,000 executed steps in all (asserted by the last test; the terminal summary
        prints `invariant steps executed: N`), a few minutes:
            ape test tests/invariants
- long: at least 50,000 steps (about an hour on two cores):
            PERPOOL_INVARIANT_PROFILE=long ape test tests/invariants
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

import invariant_kit as K
from machines import DECIMALS, LpTradingMachine, RiskMachine, World

# (examples per machine and collateral, steps per example): 2 machines x 2 decimals
PROFILES = {
    "ci": dict(max_examples=50, stateful_step_count=30),
    "long": dict(max_examples=360, stateful_step_count=40),
}
MIN_STEPS = {"ci": 3_000, "long": 50_000}
for _name, _p in PROFILES.items():
    settings.register_profile(
        f"invariants-{_name}", deadline=None, suppress_health_check=list(HealthCheck), print_blob=True, **_p
    )
PROFILE = os.environ.get("PERPOOL_INVARIANT_PROFILE", "ci")
SETTINGS = settings.get_profile(f"invariants-{PROFILE}")
MACHINES = {"lp_trading": LpTradingMachine, "risk": RiskMachine}


def _run(name: str, world: World) -> None:
    world.label = f"{name}_{world.decimals}dec"
    run_state_machine_as_test(lambda: MACHINES[name](world), settings=SETTINGS)
    K.RUNS[world.label] += 1


def test_lp_trading_machine(world):
    _run("lp_trading", world)


def test_risk_machine(world):
    _run("risk", world)


def test_zz_steps_executed():
    """The profile's step budget was reached (only when every machine ran in this session)."""
    total = sum(K.STEPS.values())
    print(f"invariant steps executed: {total} {dict(K.STEPS)}")
    if len(K.RUNS) < len(MACHINES) * len(DECIMALS):
        pytest.skip(f"only {len(K.RUNS)} of {len(MACHINES) * len(DECIMALS)} machine runs selected")
    assert total >= MIN_STEPS[PROFILE], f"{total} steps < {MIN_STEPS[PROFILE]} ({PROFILE} profile)"
