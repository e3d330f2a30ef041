"""The tests' wall clock for swap deadlines.

A test that moves the embedded chain's clock ahead (``time_travel``: TWAP windows, schedule
periods) stands for time passing. Swap deadlines are counted from the wall clock
(``tokens.chain.runtime.wall_clock``), so in tests that clock moves by the same seconds: the
chain and the wall stay together, as they do on a real network. A test about the two drifting
apart moves only the chain (``chain.w3.testing.timeTravel``).
"""

from __future__ import annotations

import time

_offset = 0


def reset() -> None:
    global _offset
    _offset = 0


def advance(seconds: int) -> None:
    global _offset
    _offset += seconds


def now() -> int:
    return int(time.time()) + _offset
