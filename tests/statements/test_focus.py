"""The FOCUS export: the spec's columns, one row per statement line, adding up."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from statements.focus import FOCUS_COLUMNS
from statements.models import Statement
from statements.services import statements_draft, statements_finalize
from tests.factories import TenantFactory
from tests.statements.test_statements import CLOSING, LAST_MONTH, THIS_MONTH, post

pytestmark = pytest.mark.django_db


def export(client, period: str):
    return client.get(f"/api/v1/exports/focus?period={period}")


def test_a_month_exports_with_focus_columns_and_adds_up(operator, acme) -> None:
    TenantFactory(slug="marked", markup_percent=Decimal(10))
    post(operator, 3, prefix="a")
    post(operator, 2, tenant="marked", prefix="m", model="claude-3-5-sonnet-20241022")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    response = export(operator, f"{LAST_MONTH:%Y-%m}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.content.decode()))
    assert tuple(reader.fieldnames) == FOCUS_COLUMNS
    for name in ("BilledCost", "EffectiveCost", "ListCost", "ListUnitPrice", "BillingCurrency",
                 "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
                 "ChargeCategory", "ChargeClass", "ChargeDescription", "ConsumedQuantity",
                 "ConsumedUnit", "PricingQuantity", "PricingUnit", "ServiceName",
                 "ServiceProviderName", "SkuId", "SkuMeter", "RegionId", "SubAccountId",
                 "SubAccountName", "Tags"):  # fmt: skip
        assert name in FOCUS_COLUMNS
    rows = list(reader)
    totals = {s.tenant.slug: s.total for s in Statement.objects.filter(period=LAST_MONTH.date())}
    for slug, total in totals.items():
        assert sum(Decimal(r["BilledCost"]) for r in rows if r["SubAccountId"] == slug) == total
    usage = [r for r in rows if r["ChargeCategory"] == "Usage"]
    gpt_input = next(r for r in usage if r["SkuId"] == "gpt-4o-2024-08-06:input")
    assert gpt_input["ConsumedQuantity"] == "3000" and gpt_input["PricingQuantity"] == "0.003"
    assert gpt_input["ListUnitPrice"] == "2.5" and gpt_input["ServiceProviderName"] == "openai"
    assert gpt_input["BillingPeriodStart"] == LAST_MONTH.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(gpt_input["Tags"]) == {"feature": "document_summarization",
                                             "tier": "enterprise"}  # fmt: skip
    assert [r["ChargeCategory"] for r in rows if r["SubAccountId"] == "marked"][-1] == "Adjustment"


def test_adjustments_are_corrections_of_their_month(operator, acme) -> None:
    post(operator, 1, prefix="a")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    post(operator, 2, prefix="late")
    statements_draft(now=CLOSING + timedelta(hours=1))
    rows = list(csv.DictReader(io.StringIO(export(operator, f"{THIS_MONTH:%Y-%m}")
                                           .content.decode())))  # fmt: skip
    corrections = [r for r in rows if r["ChargeClass"] == "Correction"]
    assert corrections
    assert {r["ChargePeriodStart"] for r in corrections} == {
        LAST_MONTH.strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    assert {r["BillingPeriodStart"] for r in corrections} == {
        THIS_MONTH.strftime("%Y-%m-%dT%H:%M:%SZ")
    }


def test_focus_is_for_operator_keys_and_needs_a_month(operator, acme_client) -> None:
    assert export(acme_client, "2026-10").status_code == 403
    response = export(operator, "October")
    assert response.status_code == 400 and list(response.json()) == ["period"]
    empty = export(operator, "2020-01")
    assert empty.status_code == 200
    assert empty.content.decode().splitlines() == [",".join(FOCUS_COLUMNS)]
