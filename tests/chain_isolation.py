"""A chain snapshot around a block of test code, restored after it.

Not `chain.isolate()`: Ape 0.8's isolate catches every exception raised inside it
(`except Exception: pass`, failed asserts and `ape.reverts` misses included), so checks run
inside it could never fail a test. `isolated` lets them through. (tests/ is on the import
path: pytest puts the directory of the root conftest there.)"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def isolated(chain: Any) -> Iterator[None]:
    """Run the block in a chain snapshot, restored after it (and the pinned next-block time
    with it), and let its exceptions through."""
    snapshot = chain.snapshot()
    pending = chain.pending_timestamp
    try:
        yield
    finally:
        chain.restore(snapshot)
        chain.pending_timestamp = pending
