from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from finops.models import ApiKey, ModelPrice
from finops.services import key_digest
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/finops/tenant/",
        "/admin/finops/apikey/",
        "/admin/finops/modelprice/",
        "/admin/ingestion/feature/",
        "/admin/ingestion/prompttemplate/",
        "/admin/ingestion/usageevent/",
        "/admin/ingestion/usageevent/?priced=no",
        "/admin/ingestion/usageevent/unpriced-models/",
        "/admin/finops/apikey/add/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/billing/usagerollup/",
        "/admin/billing/usagerollup/?grain=day",
        "/admin/billing/rollupwatermark/",
        "/admin/billing/budget/",
        "/admin/billing/budget/add/",
        "/admin/billing/alert/",
        "/admin/billing/featurecap/",
        "/admin/billing/featurecap/add/",
        "/admin/statements/statement/",
        "/admin/console/retirementreview/",
        "/admin/console/plannedfeature/",
        "/admin/console/plannedfeature/add/",
        "/admin/console/digest/",
        "/admin/portal/tenantuser/",
        "/admin/portal/tenantuser/add/",
        "/admin/finops/modelprice/import/",
        "/admin/finops/modelprice/add/",
        "/admin/ingestion/usageevent/?service_tier__exact=batch",
        "/admin/statements/vendorbill/",
        "/admin/statements/vendorbill/add/",
        "/admin/statements/vendorbill/reconciliation/",
        "/admin/statements/vendorbill/reconciliation/?period=2026-10",
    ],
)
def test_admin_pages_open(staff, operator, acme, path) -> None:
    post_events(operator, event())
    assert staff.get(path).status_code == 200


def test_unpriced_models_are_listed(staff, operator, acme) -> None:
    post_events(
        operator, {"events": [event(event_id=f"e{i}", model="homegrown-llm") for i in range(3)]}
    )
    page = staff.get("/admin/ingestion/usageevent/unpriced-models/").content.decode()
    assert "homegrown-llm" in page
    assert re.search(r"<td>3</td>", page)


def test_a_key_created_in_the_admin_is_shown_once_and_stored_hashed(staff, acme) -> None:
    response = staff.post(
        "/admin/finops/apikey/add/",
        {"name": "from admin", "tenant": acme.pk, "scope_choices": ["read"]},
        follow=True,
    )
    assert response.status_code == 200
    shown = re.search(r"fo_[0-9a-f]{12}_[A-Za-z0-9_-]+", response.content.decode()).group(0)
    key = ApiKey.objects.get(name="from admin")
    assert key.digest == key_digest(shown) and key.scopes == ["read"]
    again = staff.get(f"/admin/finops/apikey/{key.pk}/change/").content.decode()
    assert shown not in again


def test_a_price_that_priced_an_event_cannot_be_edited_or_deleted(staff, operator, acme) -> None:
    post_events(operator, event())
    used = ModelPrice.objects.get(model="gpt-4o-2024-08-06")
    page = staff.get(f"/admin/finops/modelprice/{used.pk}/change/").content.decode()
    assert 'name="input_per_million"' not in page
    staff.post(f"/admin/finops/modelprice/{used.pk}/delete/", {"post": "yes"})
    assert ModelPrice.objects.filter(pk=used.pk).exists()
    # Its rates (batch, flex, priority here) are shown and read-only too.
    assert used.rates.exists() and 'name="rates-0-per_million"' not in page
    assert "batch" in page
    unused = ModelPrice.objects.get(model="gpt-4o-mini")
    page = staff.get(f"/admin/finops/modelprice/{unused.pk}/change/").content.decode()
    assert 'name="input_per_million"' in page
    assert 'name="rates-0-per_million"' in page


def test_a_price_is_used_once_anything_protects_it(operator, acme) -> None:
    """The core names no app above it: a row is used when a protecting foreign key (an
    event's, a statement line's) points at it, whichever app holds it."""
    from finops.selectors import price_is_used, prices_with_use

    post_events(operator, event())
    used = ModelPrice.objects.get(model="gpt-4o-2024-08-06")
    unused = ModelPrice.objects.get(model="gpt-4o-mini")
    assert price_is_used(price=used)
    assert not price_is_used(price=unused)
    flags = dict(
        prices_with_use(ModelPrice.objects.filter(pk__in=[used.pk, unused.pk])).values_list(
            "model", "used"
        )
    )
    assert flags == {"gpt-4o-2024-08-06": True, "gpt-4o-mini": False}


def _price_form(**extra: str) -> dict[str, str]:
    return {
        "model": "staff-model-1", "provider": "openai", "mode": "chat", "currency": "USD",
        "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00",
        "input_per_million": "2", "output_per_million": "8", "off_peak_windows": "[]",
        "rates-TOTAL_FORMS": "1", "rates-INITIAL_FORMS": "0",
        "rates-MIN_NUM_FORMS": "0", "rates-MAX_NUM_FORMS": "1000",
        "rates-0-service_tier": "batch", "rates-0-token_kind": "output",
        "rates-0-above_tokens": "0", "rates-0-per_million": "3",
        **extra,
    }  # fmt: skip


def test_staff_add_a_price_with_its_rates_and_bad_windows_are_refused(staff) -> None:
    bad = staff.post(
        "/admin/finops/modelprice/add/",
        _price_form(off_peak_windows='[{"hours_utc": "25h", "weekdays": [8]}]'),
    )
    assert bad.status_code == 200  # the form again, with the error
    assert "weekdays are ISO numbers" in bad.content.decode()
    assert not ModelPrice.objects.filter(model="staff-model-1").exists()

    windows = '[{"hours_utc": ["16:30-00:30"], "weekdays": [1, 2, 3, 4, 5]}]'
    response = staff.post("/admin/finops/modelprice/add/", _price_form(off_peak_windows=windows))
    assert response.status_code == 302, response.content.decode()[:2000]
    price = ModelPrice.objects.get(model="staff-model-1")
    (rate,) = price.rates.all()
    assert (rate.service_tier, rate.token_kind, rate.per_million) == ("batch", "output", 3)
    assert price.off_peak_windows == [{"hours_utc": ["16:30-00:30"], "weekdays": [1, 2, 3, 4, 5]}]


def test_events_are_read_only_in_the_admin(staff, operator, acme) -> None:
    post_events(operator, event())
    assert staff.get("/admin/ingestion/usageevent/add/").status_code == 403


def test_staff_revoke_a_key_from_the_admin_and_it_stops_working(staff, acme_client, acme) -> None:
    key = ApiKey.objects.get(tenant=acme)
    assert acme_client.get("/api/v1/events").status_code == 200
    staff.post(
        "/admin/finops/apikey/",
        {"action": "revoke", "_selected_action": [key.pk]},
        follow=True,
    )
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert acme_client.get("/api/v1/events").status_code == 401


def test_staff_create_a_budget_and_read_its_alerts(staff, acme) -> None:
    from billing.models import Alert, Budget

    response = staff.post("/admin/billing/budget/add/", {
        "name": "Acme monthly", "tenant": acme.pk, "period": "month", "amount": "250",
        "thresholds": "[50, 80, 100]", "action": "notify", "model": "",
    })  # fmt: skip
    assert response.status_code == 302
    budget = Budget.objects.get(name="Acme monthly")
    from django.utils import timezone

    alert = Alert.objects.create(kind="budget_threshold", tenant=acme, budget=budget,
                                 message="Budget Acme monthly at 50%", dedup_key="x",
                                 created_at=timezone.now())  # fmt: skip
    page = staff.get(f"/admin/billing/alert/{alert.pk}/change/").content.decode()
    assert "Budget Acme monthly at 50%" in page


def test_staff_import_litellms_price_file_from_the_admin(staff, litellm_price_file) -> None:
    from decimal import Decimal

    page = staff.get("/admin/finops/modelprice/")
    assert "/admin/finops/modelprice/import/" in page.content.decode()
    with open(litellm_price_file, "rb") as upload:
        response = staff.post("/admin/finops/modelprice/import/", {
            "file": upload, "effective_from": "2026-11-01 00:00:00"})  # fmt: skip
    text = response.content.decode()
    assert response.status_code == 200
    assert "4242 entries:" in text
    assert ModelPrice.objects.count() > 3000
    # Exact: the file's per-token price times 1M, digit for digit (never through a float).
    row = ModelPrice.objects.filter(model="gpt-4o-2024-08-06").order_by("-effective_from").first()
    assert row.input_per_million == Decimal("2.5")


def test_a_price_file_that_is_not_json_is_refused(staff) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = staff.post("/admin/finops/modelprice/import/", {
        "file": SimpleUploadedFile("prices.json", b"{not json"),
        "effective_from": "2026-11-01 00:00:00"})  # fmt: skip
    assert response.status_code == 200 and "Not valid JSON" in response.content.decode()
