"""FOCUS export: a month's statements as a FinOps FOCUS cost and usage dataset (CSV).

One row per statement line, so one per tenant, feature, model, token kind and class of
rate (service tier, long-prompt threshold, off-peak; and price row, when a price changed
within the month): what was billed, the same figures the statements carry. Columns are
FOCUS 1.2's, in the specification's alphabetical order, with 1.3's `ServiceProviderName`
and `HostProviderName` added beside 1.2's `ProviderName` and `PublisherName`; columns
that do not apply are empty (null).
The mapping is in docs/statements.md.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings

from finops.money import ONE_MILLION, decimal_string
from finops.periods import MONTH, period_end

from .documents import csv_text
from .models import Statement, StatementLine

FOCUS_COLUMNS = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName",
    "BillingAccountType", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
    "CapacityReservationId", "CapacityReservationStatus", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountQuantity", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "CommitmentDiscountUnit", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "HostProviderName", "InvoiceId",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingCurrency",
    "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory", "SkuId",
    "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName",
    "SubAccountType", "Tags",
)  # fmt: skip

_METER = {
    "input": "Input tokens",
    "cached_input": "Cached input tokens",
    "cache_write": "Cache write tokens",
    "cache_write_1h": "Cache write tokens (1 h)",
    "output": "Output tokens",
    "reasoning": "Reasoning tokens",
    "query": "Queries",
}


def _units(token_kind: str) -> tuple[str, str]:
    """ConsumedUnit and PricingUnit: unit prices are per 1M tokens, or per 1M queries."""
    return ("Queries", "1M Queries") if token_kind == "query" else ("Tokens", "1M Tokens")


def sku_id(line: StatementLine) -> str:
    """The SKU: a model's token kind, in a service tier (batch, flex and priority calls
    are the vendors' separate offerings; the standard tier keeps the bare form)."""
    tier = "" if line.service_tier == "standard" else f":{line.service_tier}"
    return f"{line.model}:{line.token_kind}{tier}"


def sku_price_id(line: StatementLine) -> str:
    """One id per unit price of a price row: `<price>:<tier>:<above>:<peak|off_peak>:<kind>`
    (empty for a line no price row priced yet)."""
    if not line.price_id:
        return ""
    hours = "off_peak" if line.off_peak else "peak"
    return (f"{line.price_id}:{line.service_tier}:{line.above_tokens}:{hours}:"
            f"{line.token_kind}")  # fmt: skip


def sku_price_details(line: StatementLine) -> str:
    """FOCUS 1.2 wants keys it does not define prefixed `x_` (and PascalCase)."""
    if not line.price_id:
        return ""  # null with SkuPriceId
    details = {
        "x_ServiceTier": line.service_tier,
        "x_AboveTokens": line.above_tokens,
        "x_OffPeak": line.off_peak,
        "x_Per": "1M queries" if line.token_kind == "query" else "1M tokens",
    }
    return json.dumps(details, sort_keys=True)


def _instant(d: date | datetime) -> str:
    moment = d if isinstance(d, datetime) else datetime(d.year, d.month, d.day, tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(d: date) -> tuple[str, str]:
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    return _instant(start), _instant(period_end(MONTH, start))


def focus_rows(period: date) -> list[dict[str, str]]:
    operator = settings.FINOPS_OPERATOR_NAME
    statements = Statement.objects.filter(period=period).select_related("tenant")
    lines = (
        StatementLine.objects.filter(statement__in=statements)
        .select_related("statement__tenant", "price")
        .order_by("statement__tenant__slug", "position")
    )
    billing_start, billing_end = _month(period)
    rows = []
    for line in lines:
        statement = line.statement
        tenant = statement.tenant
        charge_start, charge_end = _month(line.period)
        row = dict.fromkeys(FOCUS_COLUMNS, "")
        row.update(
            BilledCost=decimal_string(line.amount),
            BillingAccountId=operator,
            BillingAccountName=operator,
            BillingAccountType="Chargeback",
            BillingCurrency=statement.currency,
            BillingPeriodStart=billing_start,
            BillingPeriodEnd=billing_end,
            ChargeDescription=line.description,
            ChargeFrequency="Usage-Based",
            ChargePeriodStart=charge_start,
            ChargePeriodEnd=charge_end,
            EffectiveCost=decimal_string(line.amount),
            InvoiceId=statement.number,
            InvoiceIssuerName=operator,
            SubAccountId=tenant.slug,
            SubAccountName=tenant.name or tenant.slug,
            SubAccountType="Tenant",
            Tags=json.dumps(
                {k: v for k, v in (("feature", line.feature), ("tier", tenant.tier)) if v},
                sort_keys=True,
            ),
        )
        if line.kind == StatementLine.Kind.MARKUP or not line.token_kind:
            # The markup, and the rounding of lines to the cent: charges of no SKU.
            row.update(ChargeCategory="Adjustment", ChargeFrequency="Recurring",
                       ListCost=decimal_string(line.amount_exact),
                       ContractedCost=decimal_string(line.amount_exact))  # fmt: skip
            rows.append(row)
            continue
        provider = line.price.provider if line.price_id else ""
        quantity = line.quantity or 0
        consumed_unit, pricing_unit = _units(line.token_kind)
        row.update(
            ChargeCategory="Usage",
            ChargeClass="Correction" if line.kind == StatementLine.Kind.ADJUSTMENT else "",
            ConsumedQuantity=str(quantity),
            ConsumedUnit=consumed_unit,
            PricingQuantity=decimal_string(Decimal(quantity) / ONE_MILLION),
            PricingUnit=pricing_unit,
            # Every rate of a price row is a list price known before the call: a service
            # tier's, a long prompt's, an off-peak hour's. FOCUS calls that "Standard"
            # ("predetermined at the agreed upon rate"); "Dynamic" is for prices the
            # provider may change over time (spot), which off-peak windows are not. The
            # rate class is told apart by SkuPriceId and SkuPriceDetails instead.
            PricingCategory="Standard" if line.price_id else "",
            ListUnitPrice=decimal_string(line.unit_price) or "",
            ContractedUnitPrice=decimal_string(line.unit_price) or "",
            ListCost=decimal_string(line.amount_exact),
            ContractedCost=decimal_string(line.amount_exact),
            PricingCurrency=line.price.currency if line.price_id else "",
            PricingCurrencyListUnitPrice=decimal_string(line.unit_price) or "",
            PricingCurrencyContractedUnitPrice=decimal_string(line.unit_price) or "",
            PricingCurrencyEffectiveCost=decimal_string(line.amount_exact),
            ProviderName=provider,
            PublisherName=provider,
            ServiceProviderName=provider,
            HostProviderName=provider,
            ServiceCategory="AI and Machine Learning",
            ServiceSubcategory="Generative AI",
            ServiceName=line.model,
            ResourceId=f"{tenant.slug}/{line.feature or '-'}/{line.model}",
            ResourceName=f"{line.feature or '(no feature)'} on {line.model}",
            ResourceType="LLM feature",
            SkuId=sku_id(line),
            SkuMeter=_METER.get(line.token_kind, line.token_kind),
            SkuPriceId=sku_price_id(line),
            SkuPriceDetails=sku_price_details(line),
        )
        rows.append(row)
    return rows


_NUMBERS = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
            "ContractedUnitPrice", "ConsumedQuantity", "PricingQuantity",
            "PricingCurrencyContractedUnitPrice", "PricingCurrencyEffectiveCost",
            "PricingCurrencyListUnitPrice"}  # fmt: skip


def focus_csv(period: date) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FOCUS_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in focus_rows(period):
        writer.writerow({k: v if k in _NUMBERS else csv_text(v) for k, v in row.items()})
    return out.getvalue()
