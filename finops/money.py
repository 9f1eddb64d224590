"""Money helpers. Every amount is a `Decimal`; nothing here ever touches a float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Context, Decimal

ONE_MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
# Wide enough for any sum of exact costs (30 places, 18 digits before the point): money
# arithmetic that must not round uses this context instead of the default 28 digits.
EXACT = Context(prec=100)

# ISO 4217 minor units for the currencies a statement may be billed in; others use 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


def minor_unit_exponent(currency: str) -> Decimal:
    places = _MINOR_UNITS.get(currency.upper(), 2)
    return Decimal(1).scaleb(-places)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round once, half-up, to the currency's minor unit."""
    return amount.quantize(minor_unit_exponent(currency), rounding=ROUND_HALF_UP)


def per_token_to_per_million(per_token: Decimal) -> Decimal:
    """Exact: a power-of-ten shift, no rounding."""
    return per_token.scaleb(6, EXACT).normalize(EXACT)


def decimal_string(amount: Decimal | None) -> str | None:
    """A plain decimal string without exponent or trailing zeros (`'0.0105'`), every
    digit kept (formatting, unlike `normalize()`, never rounds)."""
    if amount is None:
        return None
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
