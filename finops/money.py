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


# `money_format`'s rule for people; exact figures are `decimal_string`'s.
SIGNIFICANT_DIGITS = 3
FINEST_PLACES = 6


def money_places(amount: Decimal, currency: str) -> int:
    """The decimal places `money_format` rounds `amount` to (before trailing zeros beyond
    the minor unit are dropped)."""
    places = -minor_unit_exponent(currency).as_tuple().exponent
    if amount:
        places = max(places, min(SIGNIFICANT_DIGITS - 1 - amount.adjusted(), FINEST_PLACES))
    return places


def money_format(amount: Decimal | None, currency: str) -> str | None:
    """An amount for people to read (the admin, messages, the dashboard, the portal, the
    statement PDF): the number, then the ISO code: `1,234.50 USD`, `0.0129 USD`,
    `1,235 JPY`; None stays None. The one formatter for people; machine formats (CSV,
    JSON) keep their exact or minor-unit figures.

    The rule: round half-up to the currency's minor unit, or, where that would keep fewer
    than three significant digits (sub-cent and few-cent amounts), to three significant
    digits, dropping trailing zeros beyond the minor unit: 0.01286691 USD is `0.0129 USD`,
    0.5 USD `0.50 USD`, 0.00999 USD `0.00999 USD`, 12.3456 USD `12.35 USD`. Never finer
    than six places (0.0000123456 USD is `0.000012 USD`): a non-zero amount below
    0.0000005 reads `<0.000001 USD` (`>-0.000001 USD` below zero), so a non-zero amount
    never shows as zero.
    """
    if amount is None:
        return None
    currency = currency.upper()
    minor_places = -minor_unit_exponent(currency).as_tuple().exponent
    places = money_places(amount, currency)
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=EXACT)
    if amount and not rounded:
        finest = format(Decimal(1).scaleb(-FINEST_PLACES), "f")
        return f"<{finest} {currency}" if amount > 0 else f">-{finest} {currency}"
    text = format(rounded.copy_abs(), ",f")
    if places > minor_places:
        whole, _, fraction = text.partition(".")
        fraction = fraction.rstrip("0").ljust(minor_places, "0")
        text = f"{whole}.{fraction}" if fraction else whole
    sign = "-" if rounded < 0 else ""
    return f"{sign}{text} {currency}"
