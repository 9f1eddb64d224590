"""The management API of ingestion: the feature list."""

from __future__ import annotations

import pytest

from ingestion.models import Feature
from tests.conftest import event, post_events
from tests.factories import FeatureFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_client):
    return make_client(None, ["manage"])


def test_an_operator_lists_features_with_their_policy(manager, operator, acme) -> None:
    FeatureFactory(key="chat_assistant", status=Feature.Status.DEPRECATED, task_type="chat",
                   default_model="gpt-4o", fallback_model="gpt-4o-mini")  # fmt: skip
    assert post_events(operator, event(feature="document_summarization")).status_code == 202
    listed = manager.get("/api/v1/features").json()
    assert sorted(f["key"] for f in listed["results"]) == ["chat_assistant",
                                                           "document_summarization"]  # fmt: skip
    deprecated = manager.get("/api/v1/features?status=deprecated").json()["results"]
    assert deprecated[0] | {"created_at": None} == {
        "key": "chat_assistant", "name": "", "status": "deprecated", "task_type": "chat",
        "default_model": "gpt-4o", "fallback_model": "gpt-4o-mini", "kill_switch_enabled": False,
        "auto_created": False, "created_at": None,
    }  # fmt: skip
    assert len(deprecated) == 1
    first = manager.get("/api/v1/features?limit=1").json()
    assert len(first["results"]) == 1 and first["next"]
    assert manager.get(first["next"]).json()["next"] is None


def test_bad_feature_filters_are_400(manager) -> None:
    assert "status" in manager.get("/api/v1/features?status=retired").json()
    assert "task_type" in manager.get("/api/v1/features?task_type=poetry").json()
    assert "tenant" in manager.get("/api/v1/features?tenant=acme").json()
    assert "limit" in manager.get("/api/v1/features?limit=100000").json()


def test_features_are_for_operator_keys_with_manage(make_client, acme) -> None:
    FeatureFactory(key="chat_assistant")
    assert make_client(acme, ["read", "manage"]).get("/api/v1/features").status_code == 403
    assert make_client(None, ["read"]).get("/api/v1/features").status_code == 403
