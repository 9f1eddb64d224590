"""FOCUS export: a month's statements as a FinOps FOCUS cost and usage dataset (CSV).

One row per statement line, so one per tenant, feature, model and token kind (and price
row, when a price changed within the month): what was billed, the same figures the
statements carry. Columns are FOCUS 1.2's, in the specification's alphabetical order,
with 1.3's `ServiceProviderName` and `HostProviderName` added beside 1.2's
`ProviderName` and `PublisherName`; columns that do not apply are empty (null).
The mapping is in docs/statements.md.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings

from billing.periods import MONTH, period_end
from finops.money import ONE_MILLION, decimal_string

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
    "output": "Output tokens",
    "reasoning": "Reasoning tokens",
}


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
        row.update(
            ChargeCategory="Usage",
            ChargeClass="Correction" if line.kind == StatementLine.Kind.ADJUSTMENT else "",
            ConsumedQuantity=str(quantity),
            ConsumedUnit="Tokens",
            PricingQuantity=decimal_string(Decimal(quantity) / ONE_MILLION),
            PricingUnit="1M Tokens",
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
            SkuId=f"{line.model}:{line.token_kind}{':batch' if line.batch else ''}",
            SkuMeter=_METER.get(line.token_kind, line.token_kind),
            SkuPriceId=str(line.price_id or ""),
            SkuPriceDetails=json.dumps({"batch": line.batch, "per": "1M tokens"}),
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
