"""Gas budgets (gas is deterministic on Anvil, so budgets may be asserted; speed never is).
Budget (issues #3 and #4): every operation at most 0.5x GMX v1's gas on the same Anvil,
`liquidate` included; issue #6: an order's create + execute of a market open at most
380,000 (0.40x GMX v1's two-step open); issue #8: 0.40x for the operations that reach it
(docs/gas.md gives the floors of the others), and the others held to the figures reached so
far plus a small margin, so a regression shows. `ape run gas` prints the same figures."""

import pytest

from perpool.gas import GMX_V1, TWO_STEP_BUDGET, measure

BUDGET_RATIO = 0.5
GOAL_RATIO = 0.40  # issue #8's goal, asserted where it is met (docs/gas.md: the floors of the rest)
GOAL_MET = ("open", "LP deposit", "LP redeem", "partial decrease", "price push, 2 markets")
#: issue #8's operations still above 0.40x: the figures measured after the savings S1, S3,
#: S9 and S10 (docs/gas.md) plus ~0.5 %
REACHED = {
    "increase": 138_000,  # 137,208
    "close": 119_600,  # 118,943
    "liquidate": 114_000,  # 113,326
    "price push, 1 market": 38_600,  # 38,396
}


@pytest.fixture(scope="module")
def gas(project, accounts, chain):
    return measure(project, accounts, chain)


@pytest.mark.parametrize("operation", sorted(GMX_V1))
def test_gas__operation__within_half_of_gmx_v1(gas, operation):
    assert gas[operation] <= GMX_V1[operation] * BUDGET_RATIO, f"{operation}: {gas[operation]:,}"


@pytest.mark.parametrize("operation", GOAL_MET)
def test_gas__operation__within_the_040_goal(gas, operation):
    assert gas[operation] <= GMX_V1[operation] * GOAL_RATIO, f"{operation}: {gas[operation]:,}"


@pytest.mark.parametrize("operation", sorted(REACHED))
def test_gas__operation__within_the_figure_reached(gas, operation):
    assert gas[operation] <= REACHED[operation], f"{operation}: {gas[operation]:,}"


def test_gas__two_step_open__create_plus_execute_within_budget(gas):
    assert gas["two-step open"] == gas["order create"] + gas["order execute"]
    assert gas["two-step open"] <= TWO_STEP_BUDGET, f"{gas['two-step open']:,}"
    assert TWO_STEP_BUDGET <= GMX_V1["two-step open"] * 0.40


def test_gas__push_and_execute__one_transaction_cheaper_than_push_then_execute(gas):
    assert gas["push + execute"] < gas["price push, 1 market"] + gas["order execute"]
