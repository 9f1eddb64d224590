"""Amounts as the counters hold them.

A counter's amount is an integer number of 1e-30 units (the ledger's scale), kept as four
base-10^12 limbs that Lua adds with carries inside double precision. A reservation is a
whole number of billionths: an estimate needs no more.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

from finops.money import EXACT

SCALE = 30
NANO = Decimal("1e-9")
_BASE = 10**12


def to_limbs(amount: Decimal) -> str:
    """`amount` as exact 1e-30 units in four limbs (rounded up past the 30th place,
    which no ledger amount has)."""
    units = amount.scaleb(SCALE, EXACT).to_integral_value(rounding=ROUND_CEILING)
    n = int(units)
    return f"{n % _BASE},{n // _BASE % _BASE},{n // _BASE**2 % _BASE},{n // _BASE**3}"


def from_limbs(text: str | bytes) -> Decimal:
    if isinstance(text, bytes):
        text = text.decode()
    limbs = [int(part) for part in text.split(",")]
    n = sum(limb * _BASE**i for i, limb in enumerate(limbs))
    return Decimal(n).scaleb(-SCALE, EXACT)


def to_nanos(amount: Decimal) -> int:
    """A reservation, in whole billionths rounded up."""
    return int((amount / NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) * NANO


# The guard checks the same few limits again and again.
limit_limbs = lru_cache(maxsize=1024)(to_limbs)
