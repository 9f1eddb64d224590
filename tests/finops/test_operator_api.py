"""The management API of the core: tenants, API keys and prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from finops.models import BEGINNING_OF_TIME, ApiKey, ModelPrice, PriceRate, Tenant
from tests.conftest import event, post_events
from tests.factories import ModelPriceFactory, TenantFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/tenants"),
    ("post", "/api/v1/tenants"),
    ("get", "/api/v1/tenants/acme"),
    ("patch", "/api/v1/tenants/acme"),
    ("delete", "/api/v1/tenants/acme"),
    ("get", "/api/v1/api-keys"),
    ("post", "/api/v1/api-keys"),
    ("get", "/api/v1/api-keys/1"),
    ("post", "/api/v1/api-keys/1/revoke"),
    ("get", "/api/v1/prices"),
    ("post", "/api/v1/prices"),
    ("get", "/api/v1/prices/1"),
    ("delete", "/api/v1/prices/1"),
    ("get", "/api/v1/prices/history?model=x"),
    ("post", "/api/v1/prices/import"),
    ("get", "/api/v1/tier-plans"),
    ("post", "/api/v1/tier-plans"),
    ("get", "/api/v1/tier-plans/free"),
    ("patch", "/api/v1/tier-plans/free"),
    ("delete", "/api/v1/tier-plans/free"),
    ("get", "/api/v1/vendor-bills"),
    ("post", "/api/v1/vendor-bills"),
    ("get", "/api/v1/vendor-bills/1"),
    ("get", "/api/v1/features"),
    ("get", "/api/v1/retirement-reviews"),
    ("get", "/api/v1/retirement-reviews/1"),
    ("post", "/api/v1/retirement-reviews/1/decision"),
]


@pytest.fixture
def manager(make_client) -> APIClient:
    return make_client(None, ["manage"])


def call(client: APIClient, method: str, url: str, body: object = None):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, body if body is not None else {}, format="json")


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_every_management_endpoint_needs_an_operator_key_with_manage(
    make_client, acme, method, url
) -> None:
    assert call(APIClient(), method, url).status_code == 401
    assert call(make_client(None, ["ingest", "read"]), method, url).status_code == 403
    # A tenant key, even one with `manage`, manages nothing: not even its own tenant.
    assert call(make_client(acme, ["ingest", "read", "manage"]), method, url).status_code == 403
    assert Tenant.objects.filter(slug="acme").exists()


# --- Tenants ---------------------------------------------------------------------------


def test_an_operator_creates_reads_lists_and_changes_a_tenant(manager) -> None:
    created = manager.post("/api/v1/tenants", {
        "slug": "initech", "name": "Initech", "tier": "pro", "monthly_cap": "500.25",
        "predicted_ltv": "20", "billing_currency": "EUR", "markup_percent": "12.5",
        "signup_at": "2025-01-02T03:04:05Z",
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body | {"created_at": None} == {
        "slug": "initech", "name": "Initech", "tier": "pro", "status": "active",
        "billing_currency": "EUR", "signup_at": "2025-01-02T03:04:05Z", "monthly_cap": "500.25",
        "predicted_ltv": "20", "monthly_revenue": None, "markup_percent": "12.5",
        "cap_override_until": None, "auto_created": False, "created_at": None,
    }  # fmt: skip
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.monthly_cap == Decimal("500.25") and tenant.billing_currency == "EUR"
    assert tenant.signup_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert manager.get("/api/v1/tenants/initech").json() == body
    listed = manager.get("/api/v1/tenants?tier=pro").json()
    assert [t["slug"] for t in listed["results"]] == ["initech"] and listed["next"] is None

    patched = manager.patch("/api/v1/tenants/initech", {
        "tier": "enterprise", "monthly_cap": None, "status": "suspended",
        "cap_override_until": "2030-01-01T00:00:00+02:00", "predicted_ltv": "99.999999",
    }, format="json")  # fmt: skip
    assert patched.status_code == 200, patched.json()
    tenant.refresh_from_db()
    assert (tenant.tier, tenant.monthly_cap, tenant.status) == ("enterprise", None, "suspended")
    assert tenant.cap_override_until == datetime(2029, 12, 31, 22, tzinfo=UTC)
    assert tenant.predicted_ltv == Decimal("99.999999")
    assert patched.json()["predicted_ltv"] == "99.999999"


def test_a_new_tenant_needs_only_its_slug(manager) -> None:
    response = manager.post("/api/v1/tenants", {"slug": "tiny"}, format="json")
    assert response.status_code == 201, response.json()
    tenant = Tenant.objects.get(slug="tiny")
    assert (tenant.name, tenant.tier, tenant.billing_currency, tenant.monthly_cap) == (
        "tiny", "free", "USD", None)  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "slug"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": "acme"}, "slug"),  # exists
        ({"slug": 12.5}, "slug"),
        ({"slug": "ok", "tier": "platinum"}, "tier"),
        ({"slug": "ok", "monthly_cap": "-1"}, "monthly_cap"),
        ({"slug": "ok", "monthly_cap": "1e999999999"}, "monthly_cap"),
        ({"slug": "ok", "monthly_cap": "NaN"}, "monthly_cap"),
        ({"slug": "ok", "monthly_cap": 123456789012345678901234567890}, "monthly_cap"),
        ({"slug": "ok", "monthly_cap": [1]}, "monthly_cap"),
        ({"slug": "ok", "predicted_ltv": True}, "predicted_ltv"),
        ({"slug": "ok", "billing_currency": "usd"}, "billing_currency"),
        ({"slug": "ok", "signup_at": "yesterday"}, "signup_at"),
        ({"slug": "ok", "signup_at": "2025-01-01T00:00:00"}, "signup_at"),  # no offset
        ({"slug": "ok", "signup_at": "9999-12-31T23:59:59-10:00"}, "signup_at"),
        ({"slug": "ok", "status": "closed"}, "status"),  # set by a change, not on creation
        ({"slug": "ok", "name": "x\x00y"}, "name"),
        ({"slug": "ok", "montly_cap": "5"}, "montly_cap"),  # unknown field
        ({"slug": "ok", "auto_created": True}, "auto_created"),
    ],
)
def test_bad_tenants_are_refused_field_by_field(manager, acme, payload, field) -> None:
    response = manager.post("/api/v1/tenants", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"slug": "renamed"}, "slug"),
        ({"status": "deleted"}, "status"),
        ({"markup_percent": "100000"}, "markup_percent"),
        ({"name": ""}, "name"),
        ({"cap_override_until": "not a date"}, "cap_override_until"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_tenant_changes_are_refused_and_change_nothing(manager, acme, payload, field) -> None:
    response = manager.patch("/api/v1/tenants/acme", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    acme.refresh_from_db()
    assert (acme.slug, acme.status, acme.name, acme.markup_percent) == (
        "acme", "active", "Acme", Decimal(0))  # fmt: skip


def test_malformed_bodies_are_400_not_500(manager, acme) -> None:
    for body in (b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"):
        for url, method in (("/api/v1/tenants", "post"), ("/api/v1/tenants/acme", "patch"),
                            ("/api/v1/api-keys", "post"), ("/api/v1/prices", "post")):  # fmt: skip
            response = getattr(manager, method)(url, body, content_type="application/json")
            assert response.status_code == 400, (url, body, response.content)


def test_an_unknown_tenant_is_404(manager) -> None:
    assert manager.get("/api/v1/tenants/nobody").status_code == 404
    assert manager.patch("/api/v1/tenants/nobody", {}, format="json").status_code == 404
    assert manager.delete("/api/v1/tenants/nobody").status_code == 404


def test_a_tenant_without_usage_is_deleted_one_with_usage_only_closed(
    manager, operator, acme
) -> None:
    TenantFactory(slug="typo")
    assert manager.delete("/api/v1/tenants/typo").status_code == 204
    assert not Tenant.objects.filter(slug="typo").exists()

    assert post_events(operator, event()).status_code == 202
    refused = manager.delete("/api/v1/tenants/acme")
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]
    assert Tenant.objects.filter(slug="acme").exists()
    closed = manager.patch("/api/v1/tenants/acme", {"status": "closed"}, format="json")
    assert closed.json()["status"] == "closed"


def test_the_tenant_list_is_paginated(manager) -> None:
    for n in range(3):
        TenantFactory(slug=f"t{n}")
    first = manager.get("/api/v1/tenants?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    second = manager.get(first["next"]).json()
    slugs = {t["slug"] for t in first["results"] + second["results"]}
    assert slugs == {"t0", "t1", "t2"} and second["next"] is None
    assert manager.get("/api/v1/tenants?limit=0").status_code == 400
    assert manager.get("/api/v1/tenants?cursor=garbage").status_code == 400
    assert "sort" in manager.get("/api/v1/tenants?sort=slug").json()


# --- API keys --------------------------------------------------------------------------


def test_a_key_created_over_the_api_works_once_shown_and_stops_when_revoked(
    manager, acme, settings
) -> None:
    created = manager.post("/api/v1/api-keys", {"name": "acme reader", "tenant": "acme",
                                                "scopes": ["read"]}, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    plaintext = body.pop("key")
    assert plaintext.startswith(f"fo_{body['prefix']}_")
    assert body | {"id": 0, "created_at": None} == {
        "id": 0, "name": "acme reader", "prefix": body["prefix"], "tenant": "acme",
        "scopes": ["read"], "active": True, "created_at": None, "revoked_at": None,
    }  # fmt: skip
    stored = ApiKey.objects.get(id=body["id"])
    assert stored.tenant == acme and stored.scopes == ["read"] and plaintext not in stored.digest

    # Never shown again: not in the list nor in the key's own page.
    listed = manager.get("/api/v1/api-keys?tenant=acme")
    assert [k["id"] for k in listed.json()["results"]] == [body["id"]]
    assert plaintext not in listed.content.decode()
    assert "key" not in manager.get(f"/api/v1/api-keys/{body['id']}").json()

    # The new key authenticates, with the tenant and scope it was given.
    settings.FINOPS_API_KEY_CACHE_SECONDS = 60  # revocation must beat the key cache
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/api/v1/statements").status_code == 200
    assert client.get("/api/v1/statements?tenant=globex").status_code == 404
    assert client.get("/api/v1/tenants").status_code == 403

    revoked = manager.post(f"/api/v1/api-keys/{body['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    first_revocation = revoked.json()["revoked_at"]
    assert client.get("/api/v1/statements").status_code == 401

    again = manager.post(f"/api/v1/api-keys/{body['id']}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == first_revocation
    assert [k["id"] for k in manager.get("/api/v1/api-keys?active=false").json()["results"]] == [
        body["id"]]  # fmt: skip


def test_an_operator_key_created_over_the_api_has_no_tenant(manager) -> None:
    created = manager.post("/api/v1/api-keys", {"scopes": ["ingest", "manage"]}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["tenant"] is None
    key = ApiKey.objects.get(id=created.json()["id"])
    assert key.is_operator and key.scopes == ["ingest", "manage"]
    operators = manager.get("/api/v1/api-keys?tenant=operator").json()["results"]
    assert created.json()["id"] in [k["id"] for k in operators]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"scopes": "read"}, "scopes"),
        ({"scopes": ["read", "read"]}, "scopes"),
        ({"scopes": ["read"], "tenant": "nobody"}, "tenant"),
        ({"scopes": ["read"], "tenant": ["acme"]}, "tenant"),
        ({"scopes": ["read"], "name": "x" * 201}, "name"),
        ({"scopes": ["read"], "secret": "mine"}, "secret"),
        ({"scopes": ["read"], "prefix": "abc"}, "prefix"),
    ],
)
def test_bad_keys_are_refused_field_by_field(manager, acme, payload, field) -> None:
    before = ApiKey.objects.count()
    response = manager.post("/api/v1/api-keys", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert ApiKey.objects.count() == before


def test_an_unknown_key_is_404(manager) -> None:
    assert manager.get("/api/v1/api-keys/999999").status_code == 404
    assert manager.post("/api/v1/api-keys/999999/revoke").status_code == 404
    assert manager.get(f"/api/v1/api-keys/{2**70}").status_code == 404


def test_bad_key_list_filters_are_400(manager) -> None:
    assert "active" in manager.get("/api/v1/api-keys?active=maybe").json()
    assert "limit" in manager.get("/api/v1/api-keys?limit=abc").json()


# --- Prices ----------------------------------------------------------------------------

RATE = {"service_tier": "batch", "token_kind": "input", "per_million": "1.25"}


def test_an_operator_creates_a_price_row_with_its_rates(manager) -> None:
    response = manager.post("/api/v1/prices", {
        "model": "house-model", "provider": "openai", "input_per_million": "2.5",
        "output_per_million": "10.000000000000000001", "cached_input_per_million": "1.25",
        "rates": [RATE, {**RATE, "token_kind": "output", "per_million": "5"}],
    }, format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["effective_from"] == "1970-01-01T00:00:00Z"  # a first price: all history
    assert body["output_per_million"] == "10.000000000000000001" and body["used"] is False
    assert body["rules"] and body["source"] == "api"
    price = ModelPrice.objects.get(model="house-model")
    assert price.output_per_million == Decimal("10.000000000000000001")
    assert price.effective_from == BEGINNING_OF_TIME and price.rules
    assert sorted(price.rates.values_list("token_kind", "per_million")) == [
        ("input", Decimal("1.25")), ("output", Decimal("5"))]  # fmt: skip

    # A change is a new row from a stated instant; the first row stays as it was.
    later = manager.post("/api/v1/prices", {
        "model": "house-model", "provider": "openai", "input_per_million": "2",
        "output_per_million": "8", "effective_from": "2025-06-01T00:00:00Z",
    }, format="json")  # fmt: skip
    assert later.status_code == 201, later.json()
    assert ModelPrice.objects.filter(model="house-model").count() == 2

    in_force = manager.get("/api/v1/prices?model=house-model&at=2025-01-01T00:00:00Z").json()
    assert [p["input_per_million"] for p in in_force["results"]] == ["2.5"]
    in_force = manager.get("/api/v1/prices?model=house-model&at=2025-07-01T00:00:00Z").json()
    assert [p["input_per_million"] for p in in_force["results"]] == ["2"]
    history = manager.get("/api/v1/prices/history?model=house-model").json()
    assert [p["input_per_million"] for p in history["results"]] == ["2", "2.5"]
    assert [r["per_million"] for r in history["results"][1]["rates"]] == ["1.25", "5"]


def test_the_price_list_filters_by_provider_and_instant(manager) -> None:
    ModelPriceFactory(model="a", provider="house-a")
    ModelPriceFactory(model="b", provider="house-b")
    ModelPriceFactory(model="b", provider="house-b", input_per_million=Decimal(1),
                      effective_from=datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    rows = manager.get("/api/v1/prices?provider=house-b").json()["results"]
    assert [(p["model"], p["input_per_million"]) for p in rows] == [("b", "1"), ("b", "3")]
    for at, expected in (("2024-01-01T00:00:00Z", "3"), ("2025-01-01T00:00:00Z", "1")):
        rows = manager.get(f"/api/v1/prices?provider=house-b&at={at}").json()["results"]
        assert [(p["model"], p["input_per_million"]) for p in rows] == [("b", expected)]
    rows = manager.get("/api/v1/prices?at=2024-01-01T00:00:00Z&limit=1000").json()["results"]
    assert {"a", "b"} <= {p["model"] for p in rows}
    assert len(rows) == len({p["model"] for p in rows})  # one row per model
    assert "at" in manager.get("/api/v1/prices?at=soon").json()
    assert manager.get("/api/v1/prices/history?model=unknown").status_code == 404
    assert "model" in manager.get("/api/v1/prices/history").json()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"output_per_million": "1"}, "input_per_million"),
        ({"input_per_million": "-1", "output_per_million": "1"}, "input_per_million"),
        ({"input_per_million": "1e20", "output_per_million": "1"}, "input_per_million"),
        ({"input_per_million": "1e-19", "output_per_million": "1"}, "input_per_million"),
        ({"input_per_million": "1", "output_per_million": "1", "mode": "image"}, "mode"),
        ({"input_per_million": "1", "output_per_million": "1", "currency": "dollars"}, "currency"),
        (
            {"input_per_million": "1", "output_per_million": "1", "batch_discount_percent": "101"},
            "batch_discount_percent",
        ),  # fmt: skip
        (
            {
                "input_per_million": "1",
                "output_per_million": "1",
                "off_peak_windows": [{"hours_utc": ["1-2"]}],
            },
            "off_peak_windows",
        ),  # fmt: skip
        (
            {"input_per_million": "1", "output_per_million": "1", "off_peak_windows": "nights"},
            "off_peak_windows",
        ),  # fmt: skip
        (
            {
                "input_per_million": "1",
                "output_per_million": "1",
                "rates": [{**RATE, "service_tier": "gold"}],
            },
            "rates",
        ),  # fmt: skip
        (
            {
                "input_per_million": "1",
                "output_per_million": "1",
                "rates": [{**RATE, "above_tokens": 2**64}],
            },
            "rates",
        ),  # fmt: skip
        (
            {
                "input_per_million": "1",
                "output_per_million": "1",
                "rates": [{**RATE, "colour": "red"}],
            },
            "rates",
        ),  # fmt: skip
        ({"input_per_million": "1", "output_per_million": "1", "rates": [RATE, RATE]}, "rates"),
        ({"input_per_million": "1", "output_per_million": "1", "rules": {}}, "rules"),
        ({"input_per_million": "1", "output_per_million": "1", "id": 5}, "id"),
    ],
)
def test_bad_price_rows_are_refused_field_by_field(manager, payload, field) -> None:
    response = manager.post("/api/v1/prices", {"model": "m", **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not ModelPrice.objects.filter(model="m").exists()


def test_a_second_price_needs_its_own_instant(manager) -> None:
    ModelPriceFactory(model="m")
    payload = {"model": "m", "input_per_million": "1", "output_per_million": "1"}
    response = manager.post("/api/v1/prices", payload, format="json")
    assert response.status_code == 400 and "effective_from" in response.json()
    payload["effective_from"] = "1970-01-01T00:00:00Z"
    response = manager.post("/api/v1/prices", payload, format="json")
    assert response.status_code == 400 and "effective_from" in response.json(), response.json()
    assert ModelPrice.objects.filter(model="m").count() == 1


def test_a_price_that_priced_events_is_never_deleted(manager, operator, acme) -> None:
    unused = ModelPriceFactory(model="spare")
    PriceRate.objects.create(price=unused, service_tier="batch", token_kind="input",
                             per_million=Decimal(1))  # fmt: skip
    detail = manager.get(f"/api/v1/prices/{unused.id}").json()
    assert detail["used"] is False and len(detail["rates"]) == 1
    assert manager.delete(f"/api/v1/prices/{unused.id}").status_code == 204
    assert not ModelPrice.objects.filter(id=unused.id).exists()

    assert post_events(operator, event()).status_code == 202
    used = ModelPrice.objects.get(model="gpt-4o-2024-08-06")
    assert manager.get(f"/api/v1/prices/{used.id}").json()["used"] is True
    history = manager.get("/api/v1/prices/history?model=gpt-4o-2024-08-06").json()["results"]
    assert [p["used"] for p in history] == [True]
    assert manager.delete(f"/api/v1/prices/{used.id}").status_code == 409
    assert ModelPrice.objects.filter(id=used.id).exists()
    assert manager.get("/api/v1/prices/999999").status_code == 404


PRICE_FILE = {
    "sample_spec": {"mode": "chat"},
    "new-model": {"mode": "chat", "litellm_provider": "openai",
                  "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
    "image-model": {"mode": "image_generation", "output_cost_per_image": 0.04},
}  # fmt: skip


def _price_file(**extra: object) -> bytes:
    return json.dumps(PRICE_FILE | extra).encode()


def test_a_price_file_posted_as_json_is_imported_as_the_command_does(manager) -> None:
    response = manager.post("/api/v1/prices/import?effective_from=2025-01-01T00:00:00Z",
                            _price_file(), content_type="application/json")  # fmt: skip
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["entries"], body["created"], body["changed"], body["unchanged"],
            body["skipped"]) == (3, 1, 0, 0, 2)  # fmt: skip
    assert {r["reason"] for r in body["reasons"]} == {
        "documentation entry, not a model",
        "mode 'image_generation' is not priced per token or per query",
    }
    price = ModelPrice.objects.get(model="new-model")
    assert (price.input_per_million, price.output_per_million) == (Decimal(1), Decimal(2))
    assert price.provider == "openai" and price.source == "litellm api"

    again = manager.post("/api/v1/prices/import?show_skipped=true", _price_file(),
                         content_type="application/json").json()  # fmt: skip
    assert (again["created"], again["unchanged"]) == (0, 1)
    assert set(again["skipped_entries"]) == {"sample_spec", "image-model"}

    changed = dict(PRICE_FILE["new-model"], input_cost_per_token=3e-06)
    result = manager.post("/api/v1/prices/import", _price_file(**{"new-model": changed}),
                          content_type="application/json").json()  # fmt: skip
    assert result["changed"] == 1
    assert ModelPrice.objects.filter(model="new-model").count() == 2


def test_a_price_file_uploaded_as_multipart_is_imported(manager) -> None:
    upload = SimpleUploadedFile("prices.json", _price_file(), content_type="application/json")
    response = manager.post("/api/v1/prices/import", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    assert response.json()["created"] == 1
    assert ModelPrice.objects.get(model="new-model").source == "litellm api upload prices.json"


def test_the_shared_litellm_price_file_imports(manager, litellm_price_file) -> None:
    upload = SimpleUploadedFile("map.json", litellm_price_file.read_bytes())
    response = manager.post("/api/v1/prices/import", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["created"] + body["unchanged"] + body["changed"] > 500
    assert body["created"] + body["unchanged"] + body["changed"] + body["skipped"] == (
        body["entries"])  # fmt: skip


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'"prices"',
        b"\xff\xfe\x00",
        b'{"m": {"mode": "chat", "input_cost_per_token": NaN}}',
        b"[" * 100_000,
    ],  # fmt: skip
)
def test_a_price_file_that_is_no_price_map_is_400(manager, content) -> None:
    response = manager.post("/api/v1/prices/import", content, content_type="application/json")
    assert response.status_code == 400 and "non_field_errors" in response.json()
    upload = SimpleUploadedFile("bad.json", content)
    response = manager.post("/api/v1/prices/import", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()
    assert not ModelPrice.objects.filter(model="m").exists()


def test_bad_import_requests_are_refused_field_by_field(manager) -> None:
    upload = SimpleUploadedFile("prices.json", _price_file())
    response = manager.post("/api/v1/prices/import", {"file": upload, "extra": "x"},
                            format="multipart")  # fmt: skip
    assert response.status_code == 400 and "extra" in response.json()
    response = manager.post("/api/v1/prices/import", {"other": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()
    response = manager.post("/api/v1/prices/import?effective_from=2025-01-01", _price_file(),
                            content_type="application/json")  # fmt: skip
    assert response.status_code == 400 and "effective_from" in response.json()
    response = manager.post("/api/v1/prices/import?dry_run=1", _price_file(),
                            content_type="application/json")  # fmt: skip
    assert response.status_code == 400 and "dry_run" in response.json()
    response = manager.post("/api/v1/prices/import", "a=b",
                            content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 415
    assert not ModelPrice.objects.filter(model="new-model").exists()


def test_entries_the_columns_cannot_hold_are_skipped_with_their_reason(manager) -> None:
    entries = {
        "huge": b'{"mode": "chat", "input_cost_per_token": 1e999999999,'
        b' "output_cost_per_token": 1}',
        "wide": b'{"mode": "chat", "input_cost_per_token": 1e10, "output_cost_per_token": 1}',
        "long": b'{"mode": "chat", "input_cost_per_token": 1, "output_cost_per_token": 1,'
        b' "input_cost_per_token_above_99999999999999999999999k_tokens": 2}',
        "modes": b'{"mode": ["chat"]}',
        "nul": b'{"mode": "chat", "litellm_provider": "a\\u0000b", "input_cost_per_token": 1,'
        b' "output_cost_per_token": 1}',
        "fine": b'{"mode": "chat", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}',
    }
    body = b"{" + b", ".join(b'"%s": %s' % (k.encode(), v) for k, v in entries.items()) + b"}"
    response = manager.post("/api/v1/prices/import?show_skipped=true", body,
                            content_type="application/json")  # fmt: skip
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["created"] == 1 and set(result["skipped_entries"]) == set(entries) - {"fine"}
    assert not ModelPrice.objects.filter(model__in=set(entries) - {"fine"}).exists()
    assert ModelPrice.objects.get(model="fine").input_per_million == Decimal(1)
