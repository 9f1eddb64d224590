"""The optimization log: decisions measured on a hand-made history whose answers are
worked out by hand, and their management API. Model dollar-1 costs $1 per million input
tokens, so a call of 1M tokens costs $1.00 and one of 250k $0.25.

Days count back from today (T): chat made 2 calls of $1.00 a day on T-20 .. T-11 and,
after its change, 3 calls of $0.25 a day on T-10 .. T-1 (and a $10 call today, which no
measure counts: only whole days). search made a $0.50 call a day on T-20 .. T-11 and
none after.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from billing.rollups import rollups_update
from console.decisions import decision_results
from console.models import OptimizationDecision, ProvisionedOffer
from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import FeatureFactory, ModelPriceFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

M = 1_000_000


def _call(event_id: str, feature: str, day, tokens: int, hour: int = 12) -> dict:
    return event(event_id=event_id, tenant="acme" if feature == "chat" else "globex",
                 feature=feature, model="dollar-1", prompt_template=None,
                 input_tokens=tokens, cached_input_tokens=0, output_tokens=0,
                 timestamp=(day + timedelta(hours=hour)).isoformat())  # fmt: skip


@pytest.fixture
def history(operator, acme, globex):
    ModelPriceFactory(model="dollar-1", input_per_million=1, output_per_million=0)
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events = []
    for x in range(-20, -10):
        day = today + timedelta(days=x)
        events += [_call(f"b{x}-{i}", "chat", day, M, hour=10 + i) for i in range(2)]
        events.append(_call(f"s{x}", "search", day, M // 2))
    for x in range(-10, 0):
        day = today + timedelta(days=x)
        events += [_call(f"a{x}-{i}", "chat", day, M // 4, hour=10 + i) for i in range(3)]
    events.append(_call("today", "chat", today, 10 * M, hour=0))
    response = post_events(operator, {"events": events})
    assert response.status_code == 202, response.json()
    rollups_update()
    FeatureFactory(key="fresh")
    return now, today.date()


def _decision(feature: str, days_ago: int, expected: str, lever: str = "routing", **kw):
    return OptimizationDecision.objects.create(
        lever=lever, feature=Feature.objects.get(key=feature),
        expected_monthly_saving=Decimal(expected),
        decided_on=timezone.now().date() - timedelta(days=days_ago), **kw,
    )  # fmt: skip


def test_each_decision_is_measured_cost_per_call_before_against_after(history) -> None:
    now, _ = history
    routed = _decision("chat", 10, "50")
    recent = _decision("chat", 3, "40")
    retired = _decision("search", 10, "5", lever="retirement")
    unchanged = _decision("search", 15, "0", lever="other")
    unused = _decision("fresh", 10, "10")

    a, b, c, d, e = decision_results([routed, recent, retired, unchanged, unused], now)

    # Before T-10: T-40 .. T-11, 10 days x 2 calls x $1 = 20 calls, $20, $1 a call. After:
    # T-10 .. T-1, 10 days x 3 calls x $0.25 = 30 calls, $7.50, $0.25 a call (today's $10
    # is no whole day). Realized: ($1 - $0.25) x 3 calls a day x 30 = $67.50 a month;
    # 67.5 / 50 = 1.35.
    assert (a.days_after, a.calls_before, a.cost_before, a.calls_after, a.cost_after) == (
        10, 20, Decimal(20), 30, Decimal("7.5"))  # fmt: skip
    assert (a.cost_per_call_before, a.cost_per_call_after) == (Decimal(1), Decimal("0.25"))
    assert (a.realized_monthly_saving, a.ratio, a.status) == (
        Decimal("67.5"), Decimal("1.35"), "realized")  # fmt: skip
    assert a.as_json() == {
        "days_after": 10, "calls_before": 20, "cost_before": "20", "calls_after": 30,
        "cost_after": "7.5", "cost_per_call_before": "1", "cost_per_call_after": "0.25",
        "expected_monthly_saving": "50", "realized_monthly_saving": "67.5", "ratio": "1.35",
        "status": "realized", "currency": "USD",
    }  # fmt: skip

    # Decided on T-3: before T-33 .. T-4 = 20 calls $20 and 7 days x 3 calls x $0.25
    # (21 calls, $5.25): 41 calls, $25.25. After: T-3 .. T-1, 9 calls, $2.25, 3 a day.
    # (25.25/41 - 0.25) x 3 x 30 = 32.926829...; 3 days after: still measuring.
    assert (b.days_after, b.calls_before, b.cost_before, b.calls_after) == (
        3, 41, Decimal("25.25"), 9)  # fmt: skip
    assert b.as_json()["realized_monthly_saving"] == "32.926829"
    assert b.as_json()["ratio"] == "0.8232"  # 32.926829 / 40
    assert b.status == "measuring"

    # Retired: no calls after; the whole cost of the 30 days before (10 x $0.50) is saved.
    assert (c.calls_after, c.cost_per_call_after, c.realized_monthly_saving, c.ratio) == (
        0, None, Decimal(5), Decimal(1))  # fmt: skip
    assert c.status == "realized"

    # search decided on T-15: $0.50 a call before (T-20 .. T-16) and after (T-15 .. T-11):
    # nothing saved; an expected saving of 0 has no ratio.
    assert (d.realized_monthly_saving, d.ratio, d.status) == (Decimal(0), None, "not_realized")
    assert (d.calls_before, d.calls_after, d.days_after) == (5, 5, 15)

    # A feature never used has nothing to compare.
    assert (e.realized_monthly_saving, e.status, e.calls_before) == (None, "no_data", 0)


def test_the_first_day_after_is_measured_only_once_it_is_over(history) -> None:
    now, today = history
    decided_today = _decision("chat", 0, "10")
    (result,) = decision_results([decided_today], now)
    # Today is not a whole day yet: no day after, no saving, measuring.
    assert (result.days_after, result.calls_after, result.realized_monthly_saving) == (0, 0, None)
    assert result.status == "measuring"
    assert decision_results([], now) == []


def test_a_decision_in_another_currency_has_no_ratio(history) -> None:
    now, _ = history
    (result,) = decision_results([_decision("chat", 10, "50", currency="EUR")], now)
    assert (result.realized_monthly_saving, result.ratio) == (Decimal("67.5"), None)


# --- The management API ----------------------------------------------------------------


@pytest.fixture
def manager(make_client):
    return make_client(None, ["manage"])


def test_an_operator_records_a_decision_and_reads_its_result(manager, history) -> None:
    _, today = history
    response = manager.post("/api/v1/optimization-decisions", {
        "lever": "routing", "feature": "chat", "decided_on": str(today - timedelta(days=10)),
        "expected_monthly_saving": "50", "note": "routed to the small model",
    }, format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["lever"], body["feature"], body["expected_monthly_saving"]) == (
        "routing", "chat", "50")  # fmt: skip
    assert (body["currency"], body["created_by"]) == ("USD", None)  # an API key is no user
    assert body["result"]["realized_monthly_saving"] == "67.5"  # as worked out above
    assert body["result"]["ratio"] == "1.35"

    url = f"/api/v1/optimization-decisions/{body['id']}"
    assert manager.get(url).json()["result"]["status"] == "realized"
    changed = manager.patch(url, {"expected_monthly_saving": "135"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["result"]["ratio"] == "0.5"  # 67.5 / 135
    assert changed.json()["lever"] == "routing"  # a PATCH leaves the rest alone

    listed = manager.get("/api/v1/optimization-decisions?lever=routing").json()
    assert [d["id"] for d in listed["results"]] == [body["id"]]
    assert listed["results"][0]["result"]["cost_per_call_after"] == "0.25"
    assert manager.get("/api/v1/optimization-decisions?feature=search").json()["results"] == []

    assert manager.delete(url).status_code == 204
    assert manager.get(url).status_code == 404
    assert manager.delete(url).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lever": "teleport"}, "lever"),
        ({"feature": "nothing"}, "feature"),
        ({"expected_monthly_saving": "-1"}, "expected_monthly_saving"),
        ({"expected_monthly_saving": "ten"}, "expected_monthly_saving"),
        ({"expected_monthly_saving": "0.0000001"}, "expected_monthly_saving"),
        ({"decided_on": "2099-01-01"}, "decided_on"),
        ({"decided_on": "2026-02-30"}, "decided_on"),
        ({"decided_on": "01/02/2026"}, "decided_on"),
        ({"currency": "usd"}, "currency"),
        ({"realized_monthly_saving": "5"}, "realized_monthly_saving"),
        ({"id": 7}, "id"),
    ],
)
def test_bad_decisions_get_field_errors(manager, change, field) -> None:
    FeatureFactory(key="chat")
    good = {"lever": "routing", "feature": "chat", "decided_on": "2026-01-05",
            "expected_monthly_saving": "50"}  # fmt: skip
    response = manager.post("/api/v1/optimization-decisions", good | change, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not OptimizationDecision.objects.exists()

    decision = OptimizationDecision.objects.create(
        lever="routing", feature=Feature.objects.get(key="chat"),
        decided_on=timezone.now().date(), expected_monthly_saving=1,
    )  # fmt: skip
    response = manager.patch(f"/api/v1/optimization-decisions/{decision.id}", change,
                             format="json")  # fmt: skip
    assert response.status_code == 400 and field in response.json()


def test_missing_fields_and_bad_filters_are_400(manager) -> None:
    response = manager.post("/api/v1/optimization-decisions", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"lever", "feature", "decided_on", "expected_monthly_saving"}
    assert "lever" in manager.get("/api/v1/optimization-decisions?lever=magic").json()
    assert "tenant" in manager.get("/api/v1/optimization-decisions?tenant=acme").json()
    assert manager.get("/api/v1/optimization-decisions/999999").status_code == 404


def test_decisions_and_offers_are_for_operator_keys_with_manage(make_client, acme) -> None:
    decision = OptimizationDecision.objects.create(
        lever="batch", feature=FeatureFactory(key="chat"), decided_on=timezone.now().date(),
        expected_monthly_saving=1,
    )  # fmt: skip
    offer = ProvisionedOffer.objects.create(model="gpt-4o", monthly_price=100,
                                            tokens_per_minute=1000)  # fmt: skip
    tenant_manager = make_client(acme, ["read", "manage"])
    reader = make_client(None, ["read"])
    for client in (tenant_manager, reader):
        for url in ("/api/v1/optimization-decisions", "/api/v1/provisioned-offers",
                    f"/api/v1/optimization-decisions/{decision.id}",
                    f"/api/v1/provisioned-offers/{offer.id}"):  # fmt: skip
            assert client.get(url).status_code == 403
            assert client.delete(url).status_code in (403, 405)
        response = client.patch(f"/api/v1/provisioned-offers/{offer.id}",
                                {"monthly_price": "1"}, format="json")  # fmt: skip
        assert response.status_code == 403
    assert OptimizationDecision.objects.filter(id=decision.id).exists()
    offer.refresh_from_db()
    assert offer.monthly_price == 100
    assert make_client(None, ["manage"]).get("/api/v1/provisioned-offers").status_code == 200
    assert APIClient().get("/api/v1/optimization-decisions").status_code == 401


def test_an_operator_manages_provisioned_offers(manager) -> None:
    created = manager.post("/api/v1/provisioned-offers", {
        "model": "gpt-4o", "monthly_price": "2500.50", "tokens_per_minute": 30000,
        "note": "12-month term",
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["model"], body["monthly_price"], body["currency"], body["tokens_per_minute"]) == (
        "gpt-4o", "2500.5", "USD", 30000)  # fmt: skip
    url = f"/api/v1/provisioned-offers/{body['id']}"

    again = manager.post("/api/v1/provisioned-offers",
                         {"model": "gpt-4o", "monthly_price": "1", "tokens_per_minute": 1},
                         format="json")  # fmt: skip
    assert again.status_code == 400 and "model" in again.json()

    changed = manager.patch(url, {"monthly_price": "2400"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["monthly_price"], changed.json()["tokens_per_minute"]) == ("2400", 30000)
    assert manager.get("/api/v1/provisioned-offers?model=gpt-4o").json()["results"][0]["id"] == (
        body["id"])  # fmt: skip
    assert manager.get("/api/v1/provisioned-offers?model=other").json()["results"] == []
    assert manager.delete(url).status_code == 204
    assert manager.get(url).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"monthly_price": "-5"}, "monthly_price"),
        ({"tokens_per_minute": 0}, "tokens_per_minute"),
        ({"tokens_per_minute": "many"}, "tokens_per_minute"),
        ({"currency": "EURO"}, "currency"),
        ({"model": ""}, "model"),
        ({"note": "x" * 201}, "note"),
        ({"updated_at": "2026-01-01T00:00:00Z"}, "updated_at"),
        ({"price": "1"}, "price"),
    ],
)
def test_bad_offers_get_field_errors(manager, change, field) -> None:
    good = {"model": "gpt-4o", "monthly_price": "100", "tokens_per_minute": 1000}
    response = manager.post("/api/v1/provisioned-offers", good | change, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not ProvisionedOffer.objects.exists()


def test_the_admin_shows_expected_and_realized_side_by_side(client, history) -> None:
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(staff)
    _decision("chat", 10, "50")
    page = client.get("/admin/console/optimizationdecision/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "50.00 USD" in text and "67.50 USD" in text and "135%" in text

    chat = Feature.objects.get(key="chat")
    response = client.post("/admin/console/optimizationdecision/add/", {
        "lever": "batch", "feature": chat.pk, "decided_on": str(history[1]),
        "expected_monthly_saving": "12", "currency": "USD", "note": "",
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    added = OptimizationDecision.objects.get(lever="batch")
    assert added.created_by == staff
    change_page = client.get(f"/admin/console/optimizationdecision/{added.pk}/change/")
    assert change_page.status_code == 200 and "measuring" in change_page.content.decode()
    assert client.get("/admin/console/provisionedoffer/add/").status_code == 200
    assert client.get("/admin/console/projectionsnapshot/").status_code == 200
    assert client.get("/admin/console/projectionsnapshot/add/").status_code == 403
