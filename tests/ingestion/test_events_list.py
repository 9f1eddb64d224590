from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(operator, acme, globex) -> datetime:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=10)
    events = [
        event(
            event_id=f"a-{i}",
            tenant="acme",
            timestamp=(base + timedelta(hours=i)).isoformat(),
            feature="chat_assistant" if i % 2 else "document_summarization",
            model="gpt-4o-mini" if i % 3 == 0 else "gpt-4o-2024-08-06",
        )
        for i in range(7)
    ] + [event(event_id=f"g-{i}", tenant="globex", timestamp=base.isoformat()) for i in range(3)]
    assert post_events(operator, {"events": events}).status_code == 202
    return base


def _ids(response) -> list[str]:
    return [e["event_id"] for e in response.json()["results"]]


def test_a_tenant_key_sees_only_its_own_events(acme_client, globex_client, ledger) -> None:
    assert sorted(_ids(acme_client.get("/api/v1/events"))) == [f"a-{i}" for i in range(7)]
    assert sorted(_ids(globex_client.get("/api/v1/events"))) == ["g-0", "g-1", "g-2"]


def test_a_tenant_key_asking_for_another_tenant_gets_404(acme_client, ledger) -> None:
    assert acme_client.get("/api/v1/events?tenant=globex").status_code == 404
    assert acme_client.get("/api/v1/events?tenant=acme").status_code == 200
    assert _ids(acme_client.get("/api/v1/events?event_id=g-0")) == []


def test_an_operator_sees_every_tenant_and_can_filter(operator, ledger) -> None:
    assert len(_ids(operator.get("/api/v1/events?limit=100"))) == 10
    assert len(_ids(operator.get("/api/v1/events?tenant=globex"))) == 3
    assert operator.get("/api/v1/events?tenant=nobody").status_code == 404
    chat = operator.get("/api/v1/events?feature=chat_assistant").json()["results"]
    assert {e["feature"] for e in chat} == {"chat_assistant"} and len(chat) == 3
    mini = operator.get("/api/v1/events?model=gpt-4o-mini&tenant=acme")
    assert sorted(_ids(mini)) == ["a-0", "a-3", "a-6"]
    assert _ids(operator.get("/api/v1/events?event_id=a-4")) == ["a-4"]


def test_from_and_to_bound_the_time_range(operator, ledger) -> None:
    start = (ledger + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    end = (ledger + timedelta(hours=5)).isoformat().replace("+00:00", "Z")
    response = operator.get("/api/v1/events", {"tenant": "acme", "from": start, "to": end})
    assert _ids(response) == ["a-4", "a-3", "a-2"]


def test_pages_follow_next_until_every_event_is_seen_once(operator, ledger) -> None:
    seen: list[str] = []
    url: str | None = "/api/v1/events?limit=3"
    pages = 0
    while url:
        body = operator.get(url).json()
        assert len(body["results"]) <= 3
        seen += [e["event_id"] for e in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 4
    assert sorted(seen) == sorted({*(f"a-{i}" for i in range(7)), "g-0", "g-1", "g-2"})
    assert len(seen) == len(set(seen))


def test_items_are_the_posted_fields_plus_cost_and_priced(operator, ledger) -> None:
    item = operator.get("/api/v1/events?event_id=a-1").json()["results"][0]
    assert item["tenant"] == "acme"
    assert item["feature"] == "chat_assistant"
    assert (item["input_tokens"], item["cached_input_tokens"], item["output_tokens"]) == (
        1200,
        200,
        300,
    )
    assert item["cost"] == "0.00575" and item["priced"] is True


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("cursor=%%%", "cursor"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "to"),
    ],
)
def test_bad_query_parameters_are_named(operator, ledger, query, field) -> None:
    response = operator.get(f"/api/v1/events?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_listing_needs_the_read_scope(make_client, acme, ledger) -> None:
    ingest_only = make_client(acme, ["ingest"])
    assert ingest_only.get("/api/v1/events").status_code == 403
    read_only = make_client(acme, ["read"])
    assert read_only.get("/api/v1/events").status_code == 200
    assert post_events(read_only, event(event_id="x")).status_code == 403


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+05:00|1", "2026-11-01T00:00:00|5", "x|y"])
def test_crafted_cursors_are_field_errors(operator, ledger, raw) -> None:
    import base64

    cursor = base64.urlsafe_b64encode(raw.encode()).decode()
    response = operator.get("/api/v1/events", {"cursor": cursor})
    assert response.status_code == 400 and "cursor" in response.json()
