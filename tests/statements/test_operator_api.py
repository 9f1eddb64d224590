"""The management API of statements: vendor bills."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from statements.models import VendorBill
from tests.factories import VendorBillFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_client):
    return make_client(None, ["manage"])


def test_an_operator_enters_lists_and_reads_vendor_bills(manager, make_client) -> None:
    created = manager.post("/api/v1/vendor-bills", {
        "provider": "anthropic", "period": "2025-03", "amount": "1234567890123.123456",
        "currency": "USD", "reference": "INV-42",
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body | {"id": 0, "created_at": None} == {
        "id": 0, "provider": "anthropic", "period": "2025-03", "amount": "1234567890123.123456",
        "currency": "USD", "reference": "INV-42", "created_at": None,
    }  # fmt: skip
    bill = VendorBill.objects.get(id=body["id"])
    assert (bill.period, bill.amount) == (date(2025, 3, 1), Decimal("1234567890123.123456"))

    VendorBillFactory(provider="openai", period=date(2025, 3, 1))
    VendorBillFactory(provider="openai", period=date(2025, 2, 1))
    march = manager.get("/api/v1/vendor-bills?period=2025-03").json()
    assert sorted(b["provider"] for b in march["results"]) == ["anthropic", "openai"]
    openai = manager.get("/api/v1/vendor-bills?provider=openai&limit=1").json()
    assert len(openai["results"]) == 1 and openai["next"]
    assert manager.get(f"/api/v1/vendor-bills/{body['id']}").json() == body
    assert manager.get("/api/v1/vendor-bills/999999").status_code == 404

    # Reconciliation reads what was entered.
    reader = make_client(None, ["read"])
    rows = reader.get("/api/v1/reconciliation?period=2025-03").json()["results"]
    assert {r["provider"]: r["billed"] for r in rows}["anthropic"] == "1234567890123.123456"


def test_a_bill_amount_sent_as_a_json_number_keeps_every_digit(manager) -> None:
    response = manager.post(
        "/api/v1/vendor-bills",
        b'{"provider": "openai", "period": "2025-01", "amount": 0.100001}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    assert VendorBill.objects.get().amount == Decimal("0.100001")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"period": "2025-01", "amount": "1"}, "provider"),
        ({"provider": "", "period": "2025-01", "amount": "1"}, "provider"),
        ({"provider": "openai", "amount": "1"}, "period"),
        ({"provider": "openai", "period": "2025-13", "amount": "1"}, "period"),
        ({"provider": "openai", "period": "0000-01", "amount": "1"}, "period"),
        ({"provider": "openai", "period": "2025-01-01", "amount": "1"}, "period"),
        ({"provider": "openai", "period": 202501, "amount": "1"}, "period"),
        ({"provider": "openai", "period": "2025-01"}, "amount"),
        ({"provider": "openai", "period": "2025-01", "amount": "-5"}, "amount"),
        ({"provider": "openai", "period": "2025-01", "amount": "1e30"}, "amount"),
        ({"provider": "openai", "period": "2025-01", "amount": "Infinity"}, "amount"),
        ({"provider": "openai", "period": "2025-01", "amount": "1.0000001"}, "amount"),
        ({"provider": "openai", "period": "2025-01", "amount": "1", "currency": "US"}, "currency"),
        ({"provider": "openai", "period": "2025-01", "amount": "1", "paid": True}, "paid"),
    ],
)
def test_bad_vendor_bills_are_refused_field_by_field(manager, payload, field) -> None:
    response = manager.post("/api/v1/vendor-bills", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not VendorBill.objects.exists()


def test_bad_vendor_bill_filters_are_400(manager) -> None:
    assert "period" in manager.get("/api/v1/vendor-bills?period=March").json()
    assert "month" in manager.get("/api/v1/vendor-bills?month=2025-01").json()


def test_vendor_bills_are_for_operator_keys_with_manage(make_client, acme) -> None:
    bill = VendorBillFactory()
    tenant_manager = make_client(acme, ["read", "manage"])
    assert tenant_manager.get(f"/api/v1/vendor-bills/{bill.id}").status_code == 403
    assert make_client(None, ["read"]).get("/api/v1/vendor-bills").status_code == 403
    payload = {"provider": "openai", "period": "2025-01", "amount": "1"}
    assert tenant_manager.post("/api/v1/vendor-bills", payload, format="json").status_code == 403
    assert VendorBill.objects.count() == 1
