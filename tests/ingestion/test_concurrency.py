"""Idempotency under concurrent retries, on a real PostgreSQL (each thread its own
connection and transaction)."""

from __future__ import annotations

import random

import pytest
from django.db import connection

from ingestion.models import UsageEvent
from tests.conftest import event, post_events, run_at_once

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def test_the_same_event_posted_50_times_at_once_is_stored_once(operator, acme) -> None:
    responses = run_at_once(50, lambda i: post_events(operator, event()))

    assert [r.status_code for r in responses] == [202] * 50
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert {r.json()["cost"] for r in responses} == {"0.00575"}
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize("size", [100, 20])
def test_overlapping_batches_at_once_store_each_event_once(operator, acme, size) -> None:
    # Eight clients retry overlapping windows of the same events, each in its own order
    # (and with new features and prompts), which deadlocks unless inserts are ordered.
    def post(i: int):
        window = [
            event(event_id=f"e-{n}", feature=f"feature-{n % 7}", prompt_template=f"p-{n % 11}")
            for n in range(i * size // 4, i * size // 4 + size)
        ]
        random.Random(i).shuffle(window)
        return post_events(operator, {"events": window})

    responses = run_at_once(8, post)

    assert all(r.status_code == 202 for r in responses)
    accepted = sum(r.json()["accepted"] for r in responses)
    expected = {n for i in range(8) for n in range(i * size // 4, i * size // 4 + size)}
    assert UsageEvent.objects.count() == accepted == len(expected)


def test_a_new_tenant_seen_by_many_requests_at_once_is_created_once(operator) -> None:
    responses = run_at_once(
        20, lambda i: post_events(operator, event(event_id=f"e-{i}", tenant="brand-new"))
    )
    assert all(r.status_code == 202 for r in responses), [r.json() for r in responses]
    assert UsageEvent.objects.filter(tenant__slug="brand-new").count() == 20


def test_no_staged_row_outlives_its_request(operator, acme) -> None:
    events = [event(event_id=f"e-{n}") for n in range(100)]
    assert post_events(operator, {"events": events}).status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM usage_event_stage")
        assert cursor.fetchone()[0] == 0
