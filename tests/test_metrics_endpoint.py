"""GET /metrics: who may scrape it, and that each family moves with what it measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import current_app
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing.models import Alert, AlertDelivery
from billing.rollups import rollups_update
from console.models import Digest, DigestDelivery
from finops.metrics import guard_decision_counted
from ingestion.models import UsageEvent
from tests.conftest import event, post_events

ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

FAMILIES = (
    "finops_http_requests_total",
    "finops_http_request_duration_seconds",
    "finops_events_total",
    "finops_guard_decisions_total",
    "finops_rollup_lag_seconds",
    "finops_deliveries_unsent",
    "finops_celery_queue_length",
)


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **extra) -> Samples:
    response = client.get("/metrics", **{"REMOTE_ADDR": "127.0.0.1", **extra})
    assert response.status_code == 200, response.status_code
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def filesystem_broker(tmp_path: Path) -> Iterator[Path]:
    """Celery's broker as kombu's file-system transport in a folder of this test's own."""
    conf = current_app.conf
    # The read and write URLs: celery's broker_url prefers CELERY_BROKER_URL's value.
    saved = {"broker_read_url": conf.broker_read_url, "broker_write_url": conf.broker_write_url,
             "broker_transport_options": conf.broker_transport_options}  # fmt: skip
    folders = {name: tmp_path / name for name in ("out", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    conf.broker_read_url = conf.broker_write_url = "filesystem://"
    conf.broker_transport_options = {
        "data_folder_in": str(folders["out"]), "data_folder_out": str(folders["out"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]), "store_processed": False,
    }  # fmt: skip
    yield folders["out"]
    for name, saved_value in saved.items():
        setattr(conf, name, saved_value)


def _enqueue(count: int) -> None:
    """`count` messages on Celery's default queue, through kombu (no worker reads them)."""
    with current_app.connection_for_write() as connection:
        queue = connection.SimpleQueue(current_app.conf.task_default_queue)
        for n in range(count):
            queue.put({"n": n})
        queue.close()


# --- Who may scrape ---------------------------------------------------------------------


def test_metrics_answer_a_loopback_peer_by_default(client, db) -> None:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_metrics_are_not_found_from_another_network(client, db) -> None:
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 404


def test_a_request_relayed_by_a_proxy_is_not_vouched_for_by_its_address(client, db) -> None:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 404


def test_the_allowed_networks_are_a_setting(client, db, settings) -> None:
    settings.FINOPS_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_the_token_opens_metrics_from_anywhere_and_nothing_else_does(client, db, settings):
    settings.FINOPS_METRICS_TOKEN = "scrape-token-0123456789"
    settings.FINOPS_METRICS_ALLOWED_NETWORKS = []
    outside = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789", **outside)
    assert ok.status_code == 200
    for header in ("Bearer wrong-token", "Basic scrape-token-0123456789", ""):
        refused = client.get("/metrics", HTTP_AUTHORIZATION=header, **outside)
        assert refused.status_code == 404, header
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 404


def test_no_token_set_means_no_token_is_accepted(client, db, settings) -> None:
    settings.FINOPS_METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_metrics_refuse_writes(client, db) -> None:
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405


# --- What it shows ----------------------------------------------------------------------


def test_every_family_is_shown(client, db, filesystem_broker) -> None:
    client.get("/api/v1/health")
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    for family in FAMILIES:
        assert f"\n# TYPE {family} " in text, family


def test_requests_are_counted_and_timed_by_route(client, db, operator) -> None:
    before = scrape(client)
    operator.get("/api/v1/statements/12345")
    after = scrape(client)
    route = "api/v1/statements/<int:statement_id>"
    assert moved(before, after, "finops_http_requests_total", route=route, method="GET",
                 status="404") == 1  # fmt: skip
    assert moved(before, after, "finops_http_request_duration_seconds_count", route=route,
                 method="GET") == 1  # fmt: skip


def test_rest_events_are_counted_accepted_duplicate_and_rejected(client, operator, acme) -> None:
    before = scrape(client)
    assert post_events(operator, event(event_id="m-1")).status_code == 202
    assert post_events(operator, event(event_id="m-1")).status_code == 202
    assert post_events(operator, event(event_id="m-2", input_tokens=-1)).status_code == 400
    batch = {"events": [event(event_id="m-3"), event(event_id="m-4", model="")]}
    assert post_events(operator, batch).status_code == 207
    after = scrape(client)
    for outcome, count in (("accepted", 2), ("duplicate", 1), ("rejected", 2)):
        assert moved(before, after, "finops_events_total", intake="rest",
                     outcome=outcome) == count, outcome  # fmt: skip


def _span(span_id: str, **attributes: object) -> dict:
    def typed(v: object) -> dict:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": str(v)}

    now = time.time_ns()
    return {
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat",
        "startTimeUnixNano": str(now - 2_000_000_000), "endTimeUnixNano": str(now - 10**9),
        "attributes": [{"key": k, "value": typed(v)} for k, v in attributes.items()],
    }  # fmt: skip


def _export(*spans: dict) -> str:
    resource = {"attributes": [{"key": "finops.tenant", "value": {"stringValue": "acme"}}]}
    return json.dumps({"resourceSpans": [{"resource": resource,
                                          "scopeSpans": [{"spans": list(spans)}]}]})  # fmt: skip


def test_otlp_spans_are_counted_accepted_duplicate_rejected_and_skipped(
    client, operator, acme
) -> None:
    usage = {"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1200,
             "gen_ai.usage.output_tokens": 300}  # fmt: skip
    good = _span("eee19b7ec3c1b174", **usage)
    bad = _span("eee19b7ec3c1b175", **{**usage, "gen_ai.usage.input_tokens": "many"})
    untokened = _span("eee19b7ec3c1b176", **{"gen_ai.response.model": "gpt-4o"})
    before = scrape(client)
    for body in (_export(good), _export(good, bad, untokened)):
        response = operator.post("/v1/traces", body, content_type="application/json")
        assert response.status_code == 200
    after = scrape(client)
    for outcome in ("accepted", "duplicate", "rejected", "skipped"):
        assert moved(before, after, "finops_events_total", intake="otlp",
                     outcome=outcome) == 1, outcome  # fmt: skip


def _litellm_payload(call_id: str, **fields: object) -> dict:
    now = time.time()
    return {
        "id": call_id, "status": "success", "model": "gpt-4o", "custom_llm_provider": "openai",
        "prompt_tokens": 1200, "completion_tokens": 300, "startTime": now - 2,
        "endTime": now - 1, "request_tags": ["tenant:acme", "feature:search"],
        "response": {"model": "gpt-4o-2024-08-06"}, **fields,
    }  # fmt: skip


def test_litellm_payloads_are_counted_accepted_duplicate_rejected_and_skipped(
    client, operator, acme
) -> None:
    first = _litellm_payload("chatcmpl-m1")
    body = [first, _litellm_payload("chatcmpl-m2", request_tags=[]),  # no tenant: rejected
            _litellm_payload("chatcmpl-m3", status="failure")]  # fmt: skip
    before = scrape(client)
    for payloads in ([first], body):
        response = operator.post("/api/v1/integrations/litellm", json.dumps(payloads),
                                 content_type="application/json")  # fmt: skip
        assert response.status_code in (202, 207)
    after = scrape(client)
    for outcome in ("accepted", "duplicate", "rejected", "skipped"):
        assert moved(before, after, "finops_events_total", intake="litellm",
                     outcome=outcome) == 1, outcome  # fmt: skip


def test_guard_decisions_are_counted_per_error_type(client, db) -> None:
    before = scrape(client)
    guard_decision_counted(None)
    guard_decision_counted("budget_exceeded")
    guard_decision_counted("budget_exceeded")
    after = scrape(client)
    assert moved(before, after, "finops_guard_decisions_total", error_type="none") == 1
    assert moved(before, after, "finops_guard_decisions_total", error_type="budget_exceeded") == 2


# A rollup run on PostgreSQL folds only what committed before it.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rollup_lag_is_the_age_of_the_oldest_unfolded_event(client, operator, acme) -> None:
    rollups_update()
    assert value(scrape(client), "finops_rollup_lag_seconds") == 0
    assert post_events(operator, event(event_id="lag-1")).status_code == 202
    assert post_events(operator, event(event_id="lag-2")).status_code == 202
    received = timezone.now() - timedelta(minutes=5)
    UsageEvent.objects.filter(event_id="lag-1").update(received_at=received)
    lag = value(scrape(client), "finops_rollup_lag_seconds")
    assert 300 <= lag < 360
    # On PostgreSQL a run folds what committed below the cluster's oldest running
    # transaction: one elsewhere (another database's) holds the fold back until it ends.
    deadline = time.monotonic() + 60
    while True:
        rollups_update()
        samples = scrape(client)
        if value(samples, "finops_rollup_lag_seconds") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert value(samples, "finops_rollup_lag_seconds") == 0
    last_run = value(samples, "finops_rollup_last_run_timestamp_seconds")
    assert abs(last_run - time.time()) < 60


def test_unsent_deliveries_reflect_the_database(client, db) -> None:
    now = timezone.now()
    alerts = [Alert.objects.create(kind=Alert.Kind.SPEND_SPIKE, message="spike",
                                   dedup_key=f"spike-{n}", created_at=now)
              for n in range(3)]  # fmt: skip
    for alert, status in zip(alerts, ("pending", "pending", "failed"), strict=True):
        AlertDelivery.objects.create(alert=alert, channel="email", status=status)
    AlertDelivery.objects.create(alert=alerts[0], channel="webhook", status="sent")
    digest = Digest.objects.create(week_start=now.date(), created_at=now, text="week")
    DigestDelivery.objects.create(digest=digest, channel="email", status="sending")
    samples = scrape(client)
    expected = {
        ("alert", "pending"): 2, ("alert", "sending"): 0, ("alert", "failed"): 1,
        ("digest", "pending"): 0, ("digest", "sending"): 1, ("digest", "failed"): 0,
    }  # fmt: skip
    for (kind, status), count in expected.items():
        assert value(samples, "finops_deliveries_unsent", kind=kind, status=status) == count
    assert ("finops_deliveries_unsent", (("kind", "alert"), ("status", "sent"))) not in samples


def test_queue_length_on_the_filesystem_broker(client, db, filesystem_broker) -> None:
    assert value(scrape(client), "finops_celery_queue_length", queue="celery") == 0
    _enqueue(3)
    assert len(list(filesystem_broker.glob("*.celery.msg"))) == 3
    assert value(scrape(client), "finops_celery_queue_length", queue="celery") == 3


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
    reason="the broker is not Redis (CELERY_BROKER_URL)",
)
def test_queue_length_on_redis_is_the_queues_llen(client, db) -> None:
    import redis

    queue = current_app.conf.task_default_queue
    broker = redis.Redis.from_url(current_app.conf.broker_url)
    broker.delete(queue)
    assert value(scrape(client), "finops_celery_queue_length", queue=queue) == 0
    _enqueue(2)
    try:
        assert value(scrape(client), "finops_celery_queue_length", queue=queue) == 2
        assert broker.llen(queue) == 2
    finally:
        broker.delete(queue)


def test_another_broker_reports_no_queue_length(client, db) -> None:
    saved = current_app.conf.broker_read_url
    current_app.conf.broker_read_url = "amqp://guest@127.0.0.1:1//"
    try:
        samples = scrape(client)
    finally:
        current_app.conf.broker_read_url = saved
    assert not any(name == "finops_celery_queue_length" for name, _ in samples)


def test_a_broker_that_does_not_answer_leaves_only_its_family_out(client, db) -> None:
    saved = current_app.conf.broker_read_url
    current_app.conf.broker_read_url = "redis://127.0.0.1:1/0"
    try:
        samples = scrape(client)
    finally:
        current_app.conf.broker_read_url = saved
    assert not any(name == "finops_celery_queue_length" for name, _ in samples)
    assert ("finops_rollup_lag_seconds", ()) in samples


# --- Several processes --------------------------------------------------------------------

COUNT = """
import django
django.setup()
from finops.metrics import REST, events_counted
events_counted(intake=REST, accepted=2, rejected=1)
"""
RENDER = """
import django
django.setup()
from prometheus_client import generate_latest
from ops.metrics import scrape_registry
print(generate_latest(scrape_registry()).decode())
"""


def test_the_counters_of_every_process_are_added_up(tmp_path: Path) -> None:
    """As gunicorn's workers do: each counts in its own process; the one that answers
    the scrape reports the sum (PROMETHEUS_MULTIPROC_DIR)."""
    (tmp_path / "metrics").mkdir()
    env = {
        **os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "FINOPS_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "config.settings",
    }  # fmt: skip
    env.pop("DATABASE_URL", None)  # the state families are not asked about here
    for script in (COUNT, COUNT):
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-c", RENDER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    samples = parse(done.stdout)
    assert value(samples, "finops_events_total", intake="rest", outcome="accepted") == 4
    assert value(samples, "finops_events_total", intake="rest", outcome="rejected") == 2
