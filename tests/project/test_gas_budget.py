"""Gas budgets (gas is deterministic on Anvil, so budgets may be asserted; speed never is).
Budget (issues #3 and #4): every operation at most 0.5x GMX v1's gas on the same Anvil,
`liquidate` included. `ape run gas` prints the same figures."""

import pytest

from perpool.gas import GMX_V1, measure

BUDGET_RATIO = 0.5


@pytest.fixture(scope="module")
def gas(project, accounts, chain):
    return measure(project, accounts, chain)


@pytest.mark.parametrize("operation", sorted(GMX_V1))
def test_gas__operation__within_half_of_gmx_v1(gas, operation):
    assert gas[operation] <= GMX_V1[operation] * BUDGET_RATIO, f"{operation}: {gas[operation]:,}"
