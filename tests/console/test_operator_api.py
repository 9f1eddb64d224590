"""The management API of the console: retirement review decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion.models import Feature
from tests.factories import FeatureFactory, RetirementReviewFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_client):
    return make_client(None, ["manage"])


def test_an_operator_lists_open_reviews_and_retires_a_feature(manager) -> None:
    FeatureFactory(key="old_feature")
    review = RetirementReviewFactory(subject="old_feature")
    RetirementReviewFactory(kind="model", subject="gpt-3.5", decision="keep")
    listed = manager.get("/api/v1/retirement-reviews").json()
    assert [r["subject"] for r in listed["results"]] == ["old_feature"]
    assert listed["results"][0]["cost"] == "0.0105" and listed["next"] is None
    kept = manager.get("/api/v1/retirement-reviews?decision=keep").json()["results"]
    assert [r["subject"] for r in kept] == ["gpt-3.5"]

    today = timezone.now().date()
    decided = manager.post(f"/api/v1/retirement-reviews/{review.id}/decision", {
        "decision": "retire", "deprecate_on": str(today - timedelta(days=1)),
        "throttle_on": str(today + timedelta(days=10)),
        "sunset_on": str(today + timedelta(days=20)),
        "note": "unused since the redesign",
    }, format="json")  # fmt: skip
    assert decided.status_code == 200, decided.json()
    assert decided.json()["decision"] == "retire" and decided.json()["decided_at"]
    review.refresh_from_db()
    assert (review.decision, review.note, review.decided_by) == (
        "retire", "unused since the redesign", None)  # fmt: skip
    assert review.sunset_on == today + timedelta(days=20) and review.decided_at
    # The lifecycle walks from the dates, as after an admin decision.
    assert Feature.objects.get(key="old_feature").status == Feature.Status.DEPRECATED
    assert manager.get("/api/v1/retirement-reviews").json()["results"] == []
    assert manager.get(f"/api/v1/retirement-reviews/{review.id}").json()["decision"] == "retire"


def test_consolidating_names_the_feature_it_goes_into(manager) -> None:
    FeatureFactory(key="summarize_v1")
    FeatureFactory(key="summarize_v2")
    review = RetirementReviewFactory(subject="summarize_v1")
    url = f"/api/v1/retirement-reviews/{review.id}/decision"
    missing = manager.post(url, {"decision": "consolidate"}, format="json")
    assert missing.status_code == 400 and "consolidate_into" in missing.json()
    response = manager.post(url, {"decision": "consolidate", "consolidate_into": "summarize_v2"},
                            format="json")  # fmt: skip
    assert response.status_code == 200, response.json()
    assert response.json()["consolidate_into"] == "summarize_v2"
    assert Feature.objects.get(key="summarize_v1").status == Feature.Status.DEPRECATED


def test_keeping_a_model_needs_no_dates(manager) -> None:
    review = RetirementReviewFactory(kind="model", subject="gpt-3.5")
    response = manager.post(f"/api/v1/retirement-reviews/{review.id}/decision",
                            {"decision": "keep"}, format="json")  # fmt: skip
    assert response.status_code == 200
    review.refresh_from_db()
    assert review.decision == "keep"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "decision"),
        ({"decision": "open"}, "decision"),
        ({"decision": "delete"}, "decision"),
        ({"decision": "retire"}, "sunset_on"),
        (
            {
                "decision": "retire",
                "deprecate_on": "2030-03-01",
                "throttle_on": "2030-02-01",
                "sunset_on": "2030-04-01",
            },
            "throttle_on",
        ),  # fmt: skip
        (
            {
                "decision": "retire",
                "deprecate_on": "2030-02-30",
                "throttle_on": "2030-03-01",
                "sunset_on": "2030-04-01",
            },
            "deprecate_on",
        ),  # fmt: skip
        ({"decision": "retire", "deprecate_on": "99999-01-01"}, "deprecate_on"),
        ({"decision": "consolidate", "consolidate_into": "nothing"}, "consolidate_into"),
        ({"decision": "keep", "decided_by": "me"}, "decided_by"),
        ({"decision": "keep", "reason": "x"}, "reason"),
    ],
)
def test_bad_decisions_are_refused_field_by_field(manager, payload, field) -> None:
    FeatureFactory(key="old_feature")
    review = RetirementReviewFactory(subject="old_feature")
    response = manager.post(f"/api/v1/retirement-reviews/{review.id}/decision", payload,
                            format="json")  # fmt: skip
    assert response.status_code == 400
    assert field in response.json(), response.json()
    review.refresh_from_db()
    assert review.decision == "open" and review.decided_at is None


def test_an_unknown_review_is_404(manager) -> None:
    assert manager.get("/api/v1/retirement-reviews/999999").status_code == 404
    response = manager.post("/api/v1/retirement-reviews/999999/decision", {"decision": "keep"},
                            format="json")  # fmt: skip
    assert response.status_code == 404


def test_bad_review_filters_are_400(manager) -> None:
    assert "decision" in manager.get("/api/v1/retirement-reviews?decision=maybe").json()
    assert "subject" in manager.get("/api/v1/retirement-reviews?subject=x").json()


def test_reviews_are_for_operator_keys_with_manage(make_client, acme) -> None:
    review = RetirementReviewFactory()
    tenant_manager = make_client(acme, ["read", "manage"])
    assert tenant_manager.get("/api/v1/retirement-reviews").status_code == 403
    response = tenant_manager.post(f"/api/v1/retirement-reviews/{review.id}/decision",
                                   {"decision": "keep"}, format="json")  # fmt: skip
    assert response.status_code == 403
    review.refresh_from_db()
    assert review.decision == "open"
