"""The attack catalogue (issue #8): one test per attack, named
`test_attack__<what>__<refused with reason | not profitable>` (incident replays:
`test_incident_<name>__...`). Each asserts the exact revert reason (or, for "not
profitable", the attacker's balance after against before, computed from the contracts'
formulas) and that nothing was lost (attack_kit: the Vault's balance and buckets, pool
value, LP share price, open interest and the bystanders' positions, unchanged or changed
only by the documented amounts). Each module's docstring lists its cases:

  test_attacks_inputs.py      zero and huge inputs, overflow at 18 decimals, leverage and
                              min collateral boundaries, dust positions, order field bounds
  test_attacks_oracle.py      every push refusal (non-keeper, zero, too large, stale, out
                              of order, future, jump, window move, reference deviation and
                              staleness, half-applied batch) and acting on a stale price
  test_attacks_reentrancy.py  re-entry through the token's callback on pulls and through a
                              contract receiver on every payout, views read mid-call, ETH
  test_attacks_lp.py          first-depositor inflation, donation, reserved liquidity,
                              cooldown, LP sandwich of a price push, flash LP around a close
  test_attacks_trading.py     front-running with direct fills off, free looks, self-
                              liquidation, stale liquidation, funding games, ADL, pause
  test_attacks_admin.py       every out-of-range setting, strangers, internal entry points
  test_attacks_tokens.py      tokens returning nothing or false
  test_incidents.py           REFERENCE.md's incidents: AVAX, GLP drain, GMX bounty, Gains,
                              JELLY, YFI, Hyperliquid ADL

An attack that works is a test marked `xfail(strict=True, raises=attack_kit.Finding)`
whose reason starts with "FINDING:".

The catalogue reuses the Perp suites' reference model and deploy helper
(tests/unit/perp/helpers.py: `build_env`, the position formulas, `push_fresh`, `pin`...).
pytest puts a test folder on `sys.path` only while it collects that folder, so this
conftest adds tests/unit/perp itself: `from helpers import ...` then works whether
tests/e2e runs alone or with the whole suite (the same module either way).
"""

from __future__ import annotations

import sys
from pathlib import Path

_PERP_TESTS = Path(__file__).resolve().parents[1] / "unit" / "perp"
if str(_PERP_TESTS) not in sys.path:
    sys.path.insert(0, str(_PERP_TESTS))

from helpers import fast_reverts  # noqa: E402,F401  (module-scoped autouse: quick reverts)
