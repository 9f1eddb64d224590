"""Reconciliation: priced events per provider beside the vendors' bills."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from statements.models import Statement, VendorBill
from statements.services import statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, LAST_MONTH, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def month(operator, acme) -> str:
    # openai: 100 calls x 0.00575 = 0.575; anthropic: 10 calls of claude-3-5-sonnet.
    post(operator, 100, prefix="o")
    post(operator, 10, prefix="c", model="claude-3-5-sonnet-20241022")
    period = LAST_MONTH.date()
    VendorBill.objects.create(provider="openai", period=period, amount=Decimal("0.58"))
    VendorBill.objects.create(provider="anthropic", period=period, amount=Decimal("0.04"))
    VendorBill.objects.create(provider="anthropic", period=period, amount=Decimal("0.03"))
    VendorBill.objects.create(provider="bedrock", period=period, amount=Decimal("12"))
    return f"{LAST_MONTH:%Y-%m}"


def test_each_provider_beside_its_bills(operator, month) -> None:
    response = operator.get(f"/api/v1/reconciliation?period={month}")
    assert response.status_code == 200
    body = response.json()
    assert body["tolerance_percent"] == "2"
    rows = {r["provider"]: r for r in body["results"]}
    assert rows["openai"] == {
        "provider": "openai", "currency": "USD", "events": 100, "ledger": "0.575",
        "billed": "0.58", "difference": "-0.005", "percent": "-0.86", "flagged": False,
        "note": "",
    }  # fmt: skip
    # Two anthropic bills add up; 10 calls of 1000 input, 200 cached, 300 output tokens.
    assert rows["anthropic"]["billed"] == "0.07"
    assert rows["anthropic"]["ledger"] == "0.0756"
    assert rows["anthropic"]["flagged"] is True  # 8% over
    assert rows["bedrock"]["ledger"] == "0" and rows["bedrock"]["flagged"] is True


def test_reconciliation_is_for_operators_and_needs_a_month(operator, acme_client) -> None:
    assert acme_client.get("/api/v1/reconciliation?period=2026-10").status_code == 403
    assert list(operator.get("/api/v1/reconciliation").json()) == ["period"]


def test_the_admin_page_flags_differences(month) -> None:
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    page = client.get(f"/admin/statements/vendorbill/reconciliation/?period={month}")
    text = page.content.decode()
    assert page.status_code == 200
    assert text.count("FLAGGED") == 2 and "differs by more than 2%" in text


def test_statements_admin_downloads(month) -> None:
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = Statement.objects.get(tenant__slug="acme", period=LAST_MONTH.date())
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    page = client.get(f"/admin/statements/statement/{statement.id}/change/")
    assert page.status_code == 200 and "matches its lines" in page.content.decode()
    pdf = client.get(f"/admin/statements/statement/{statement.id}/pdf/")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    csv_text = client.get(f"/admin/statements/statement/{statement.id}/csv/").content.decode()
    assert csv_text.startswith("number,tenant,statement_period")
