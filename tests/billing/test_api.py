from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.models import Alert, Budget
from ingestion.models import Feature
from tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_client):
    return make_client(None, ["read", "manage"])


def test_an_operator_creates_lists_changes_and_deletes_budgets(manager, acme) -> None:
    FeatureFactory(key="chat_assistant")
    created = manager.post("/api/v1/budgets", {
        "tenant": "acme", "feature": "chat_assistant", "period": "month", "amount": "500.00",
        "thresholds": [100, 50, 80], "action": "block",
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body == {"id": body["id"], "name": "", "tenant": "acme", "feature": "chat_assistant",
                    "model": "", "prompt_template": None, "user": "", "api_key": None,
                    "period": "month", "amount": "500", "thresholds": [50, 80, 100],
                    "action": "block"}  # fmt: skip

    listed = manager.get("/api/v1/budgets").json()
    assert [b["id"] for b in listed["results"]] == [body["id"]] and listed["next"] is None

    patched = manager.patch(f"/api/v1/budgets/{body['id']}", {"amount": "750.5"}, format="json")
    assert patched.json()["amount"] == "750.5"
    assert manager.get(f"/api/v1/budgets/{body['id']}").json()["amount"] == "750.5"

    assert manager.delete(f"/api/v1/budgets/{body['id']}").status_code == 204
    assert manager.get(f"/api/v1/budgets/{body['id']}").status_code == 404
    assert not Budget.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"period": "week", "amount": "1"}, "period"),
        ({"period": "day", "amount": "0"}, "amount"),
        ({"period": "day", "amount": "abc"}, "amount"),
        ({"period": "day"}, "amount"),
        ({"period": "day", "amount": "1", "tenant": "nobody"}, "tenant"),
        ({"period": "day", "amount": "1", "feature": "nothing"}, "feature"),
        ({"period": "day", "amount": "1", "thresholds": []}, "thresholds"),
        ({"period": "day", "amount": "1", "thresholds": [50, 50]}, "thresholds"),
        ({"period": "day", "amount": "1", "thresholds": [0]}, "thresholds"),
        ({"period": "day", "amount": "1", "action": "explode"}, "action"),
        ({"period": "day", "amount": "1", "treshold": [50]}, "treshold"),
        ({"period": "day", "amount": "1", "id": 7}, "id"),
    ],
)
def test_bad_budgets_are_refused_field_by_field(manager, acme, payload, field) -> None:
    response = manager.post("/api/v1/budgets", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Budget.objects.exists()


def test_a_budget_amount_sent_as_a_json_number_keeps_every_digit(manager, acme) -> None:
    response = manager.post("/api/v1/budgets", b'{"period": "day", "amount": 1234567890123.123456}',
                            content_type="application/json")  # fmt: skip
    assert response.status_code == 201, response.json()
    assert response.json()["amount"] == "1234567890123.123456"


def test_budgets_need_the_right_scope(make_client, acme_client, acme) -> None:
    payload = {"period": "day", "amount": "1"}
    # A tenant key reads its own tenant's budgets; without `manage` it writes none.
    assert acme_client.get("/api/v1/budgets").status_code == 200
    assert acme_client.post("/api/v1/budgets", payload, format="json").status_code == 403
    ingest_only = make_client(None, ["ingest"])
    assert ingest_only.get("/api/v1/budgets").status_code == 403
    reader = make_client(None, ["read"])
    assert reader.get("/api/v1/budgets").status_code == 200
    assert reader.post("/api/v1/budgets", payload, format="json").status_code == 403


def _alert(tenant, kind: str = "budget_threshold", key: str = "k") -> Alert:
    return Alert.objects.create(kind=kind, tenant=tenant, message=f"alert {key}",
                                dedup_key=key, created_at=datetime.now(UTC))  # fmt: skip


def test_a_tenant_key_sees_only_its_own_alerts(acme_client, globex_client, operator, acme,
                                               globex) -> None:  # fmt: skip
    _alert(acme, key="a")
    _alert(globex, key="g")
    _alert(None, kind="spend_spike", key="s")

    mine = acme_client.get("/api/v1/alerts").json()["results"]
    assert [a["message"] for a in mine] == ["alert a"]
    assert acme_client.get("/api/v1/alerts?tenant=globex").status_code == 404
    assert len(operator.get("/api/v1/alerts").json()["results"]) == 3
    spikes = operator.get("/api/v1/alerts?kind=spend_spike").json()["results"]
    assert [a["kind"] for a in spikes] == ["spend_spike"]
    fields = {"id", "kind", "severity", "tenant", "feature", "model", "prompt_template",
              "period_start", "threshold", "value", "message", "created_at",
              "resolved_at"}  # fmt: skip
    assert set(mine[0]) == fields


def test_alert_queries_are_validated(operator) -> None:
    assert "kind" in operator.get("/api/v1/alerts?kind=bad").json()
    assert "since" in operator.get("/api/v1/alerts?since=soon").json()


def test_feature_policies_are_read_and_changed(manager, acme_client, db) -> None:
    FeatureFactory(key="chat_assistant", default_model="gpt-4o")
    assert acme_client.get("/api/v1/features/chat_assistant").status_code == 403
    got = manager.get("/api/v1/features/chat_assistant")
    assert got.status_code == 200
    assert got.json()["default_model"] == "gpt-4o"

    changed = manager.patch("/api/v1/features/chat_assistant",
                            {"fallback_model": "gpt-4o-mini", "status": "deprecated",
                             "kill_switch_enabled": True}, format="json")  # fmt: skip
    assert changed.status_code == 200
    feature = Feature.objects.get(key="chat_assistant")
    assert (feature.fallback_model, feature.status, feature.kill_switch_enabled) == (
        "gpt-4o-mini", "deprecated", True)  # fmt: skip
    assert manager.patch("/api/v1/features/chat_assistant", {"status": "gone"},
                         format="json").json().keys() == {"status"}  # fmt: skip
    assert acme_client.patch("/api/v1/features/chat_assistant", {"status": "sunset"},
                             format="json").status_code == 403  # fmt: skip
    assert manager.get("/api/v1/features/nothing").status_code == 404


def test_a_features_workload_and_allowed_regions_are_set_and_checked(manager, db) -> None:
    FeatureFactory(key="nightly_report")
    changed = manager.patch("/api/v1/features/nightly_report",
                            {"workload": "batchable", "allowed_regions": ["eu", "eu"]},
                            format="json")  # fmt: skip
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["workload"], changed.json()["allowed_regions"]) == ("batchable", ["eu"])
    feature = Feature.objects.get(key="nightly_report")
    assert (feature.workload, feature.allowed_regions) == ("batchable", ["eu"])
    for bad in ({"workload": "whenever"}, {"allowed_regions": "eu"},
                {"allowed_regions": [1]}, {"allowed_regions": [""]}):  # fmt: skip
        answer = manager.patch("/api/v1/features/nightly_report", bad, format="json")
        assert answer.status_code == 400 and set(answer.json()) == set(bad), answer.json()
    assert Feature.objects.get(key="nightly_report").allowed_regions == ["eu"]


def test_a_misspelt_field_or_query_parameter_is_refused_not_dropped(manager, operator) -> None:
    FeatureFactory(key="chat_assistant", default_model="gpt-4o")
    budget = manager.post("/api/v1/budgets", {"period": "day", "amount": "1"}, format="json")
    answer = manager.patch(f"/api/v1/budgets/{budget.json()['id']}", {"amout": "2"},
                           format="json")  # fmt: skip
    assert answer.status_code == 400 and answer.json() == {"amout": ["Unknown field."]}
    assert Budget.objects.get().amount == 1
    answer = manager.patch("/api/v1/features/chat_assistant", {"kill_switch": True},
                           format="json")  # fmt: skip
    assert answer.status_code == 400 and set(answer.json()) == {"kill_switch"}
    assert not Feature.objects.get(key="chat_assistant").kill_switch_enabled
    assert set(operator.get("/api/v1/alerts?knd=cap_reached").json()) == {"knd"}
    # Pagination parameters are part of every list's query.
    assert operator.get("/api/v1/alerts?limit=5").status_code == 200
    assert operator.get("/api/v1/statements?limit=5").status_code == 200
    assert operator.get("/api/v1/events?limit=5").status_code == 200
