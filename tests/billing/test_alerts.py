"""Alert severity, routing, per-tenant webhooks, mutes and resolved notices: alerts raised
through `alert_raise` on the real database, sent to real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client

from billing.alerts import alert_raise, alert_resolve, alerts_deliver
from billing.budgets import budget_create, budgets_evaluate
from billing.caps import caps_check
from billing.models import Alert, AlertDelivery, AlertMute, AlertRoute, Budget
from billing.rollups import rollups_update
from finops.models import Tenant
from tests.conftest import event, post_events, run_at_once
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOW = datetime.now(UTC)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({  # type: ignore[attr-defined]
            "path": self.path, "body": json.loads(body),
            "alert_id": self.headers.get("X-Finops-Alert-Id"),
            "event": self.headers.get("X-Finops-Alert-Event"),
        })  # fmt: skip
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[Callable[[str], str]]:
    """One receiver on 127.0.0.1; `hooks(name)` is a URL whose posts it records under
    that path (`hooks.received`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(name: str) -> str:
        return f"http://127.0.0.1:{server.server_port}/{name}"

    url.received = server.received  # type: ignore[attr-defined]
    yield url
    server.shutdown()


@pytest.fixture
def defaults(settings, hooks) -> None:
    """The default staff channels of the settings."""
    settings.FINOPS_ALERT_WEBHOOK_URL = hooks("default")
    settings.FINOPS_ALERT_EMAILS = ["finops@example.com"]


def _received(hooks, path: str) -> list[dict]:
    return [r for r in hooks.received if r["path"] == f"/{path}"]


def _raise(kind: str, key: str, tenant: Tenant | None = None, **fields) -> Alert | None:
    return alert_raise(kind=kind, dedup_key=key, message=f"alert {key}", now=NOW,
                       tenant=tenant, **fields)  # fmt: skip


def spend(client, dollars: int, *, prefix: str, tenant: str = "acme") -> None:
    """Calls of $2.50 each (1M uncached input tokens of gpt-4o-2024-08-06), a minute ago."""
    events = [
        event(event_id=f"{prefix}-{i}", tenant=tenant, input_tokens=1_000_000,
              cached_input_tokens=0, output_tokens=0,
              timestamp=(NOW - timedelta(minutes=1)).isoformat())
        for i in range(int(Decimal(dollars) / Decimal("2.5")))
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202
    rollups_update()


# --- Severity -----------------------------------------------------------------------


def test_budget_alerts_are_info_below_100_percent_and_critical_when_the_budget_blocks(
    operator, acme, defaults
) -> None:
    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[50, 100],
                  action=Budget.Action.BLOCK, name="blocking")  # fmt: skip
    budget_create(tenant=acme, period="day", amount=Decimal("10"), thresholds=[100],
                  action=Budget.Action.DOWNGRADE, name="downgrading")  # fmt: skip
    spend(operator, 10, prefix="a")

    budgets_evaluate(now=NOW)

    severities = {(a.budget.name, a.threshold): a.severity for a in Alert.objects.all()}
    assert severities == {("blocking", 50): "info", ("blocking", 100): "critical",
                          ("downgrading", 100): "warning"}  # fmt: skip


def test_a_reached_cap_is_critical(operator, defaults) -> None:
    TenantFactory(slug="capped", monthly_cap=Decimal("5"))
    spend(operator, 5, prefix="a", tenant="capped")
    caps_check(now=NOW)
    assert Alert.objects.get().severity == "critical"


def test_an_alert_without_a_severity_is_a_warning(defaults) -> None:
    assert _raise("spend_spike", "s").severity == "warning"


# --- Routing ------------------------------------------------------------------------


def test_the_default_settings_get_every_alert_when_there_are_no_routes(
    acme, defaults, hooks
) -> None:
    alert = _raise("cap_reached", "c", acme, severity="critical")
    assert alerts_deliver().sent == 2
    (posted,) = _received(hooks, "default")
    assert posted["body"]["event"] == "alert.triggered" and posted["event"] == "triggered"
    assert posted["body"]["alert"]["severity"] == "critical"
    assert posted["alert_id"] == str(alert.id)
    (email,) = mail.outbox
    assert email.to == ["finops@example.com"] and "(critical)" in email.subject


def test_staff_routes_pick_alerts_by_kind_and_severity(acme, defaults, hooks) -> None:
    AlertRoute.objects.create(kind="spend_spike", min_severity="critical", channel="webhook",
                              target=hooks("oncall"))  # fmt: skip
    AlertRoute.objects.create(kind="budget_threshold", channel="email",
                              target="ops@example.com, cfo@example.com")  # fmt: skip

    spike = _raise("spend_spike", "spike-warning", severity="warning")
    page = _raise("spend_spike", "spike-critical", severity="critical")
    budget = _raise("budget_threshold", "budget-info", acme, severity="info")
    cap = _raise("cap_reached", "cap", acme, severity="critical")
    alerts_deliver()

    # A kind that a staff route names goes where its routes say, and nowhere else: a
    # warning spike goes nowhere, as staff asked.
    assert not spike.deliveries.exists()
    assert [r["alert_id"] for r in _received(hooks, "oncall")] == [str(page.id)]
    # A kind no staff route names goes to the default settings.
    assert [r["alert_id"] for r in _received(hooks, "default")] == [str(cap.id)]
    assert sorted(tuple(m.to) for m in mail.outbox) == [
        ("finops@example.com",), ("ops@example.com", "cfo@example.com")]  # fmt: skip
    delivery = budget.deliveries.get()
    assert (delivery.route.kind, delivery.target) == (
        "budget_threshold",
        "ops@example.com,cfo@example.com",
    )


def test_a_route_for_every_kind_replaces_the_defaults_for_every_kind(acme, defaults,
                                                                     hooks) -> None:  # fmt: skip
    AlertRoute.objects.create(channel="webhook", target=hooks("all"), min_severity="warning")
    _raise("cap_reached", "cap", acme, severity="critical")
    _raise("budget_threshold", "info", acme, severity="info")
    alerts_deliver()
    assert [r["body"]["alert"]["kind"] for r in _received(hooks, "all")] == ["cap_reached"]
    assert not _received(hooks, "default") and not mail.outbox


def test_two_routes_to_one_target_send_once(acme, defaults, hooks, settings) -> None:
    AlertRoute.objects.create(kind="cap_reached", channel="webhook", target=hooks("default"))
    AlertRoute.objects.create(channel="webhook", target=hooks("default"))
    _raise("cap_reached", "cap", acme)
    assert alerts_deliver().sent == 1
    assert len(_received(hooks, "default")) == 1


def test_a_tenant_webhook_gets_its_own_tenants_alerts_and_no_other(
    acme, globex, defaults, hooks
) -> None:
    AlertRoute.objects.create(tenant=acme, channel="webhook", target=hooks("acme"))
    AlertRoute.objects.create(tenant=globex, kind="budget_threshold", channel="webhook",
                              target=hooks("globex"))  # fmt: skip
    mine = _raise("budget_threshold", "a", acme)
    _raise("budget_threshold", "g", globex)
    _raise("metric_warning", "m", None)
    _raise("cap_reached", "g-cap", globex)
    alerts_deliver()

    to_acme = _received(hooks, "acme")
    assert [r["alert_id"] for r in to_acme] == [str(mine.id)]
    assert {r["body"]["alert"]["tenant"] for r in to_acme} == {"acme"}
    to_globex = _received(hooks, "globex")
    assert [r["body"]["alert"]["message"] for r in to_globex] == ["alert g"]
    # A tenant's route adds to the staff channels; it does not replace them.
    assert len(_received(hooks, "default")) == 4


def test_a_muted_kind_is_stored_but_sent_to_nobody(acme, globex, defaults, hooks) -> None:
    AlertRoute.objects.create(tenant=acme, channel="webhook", target=hooks("acme"))
    AlertMute.objects.create(tenant=acme, kind="cap_reached", reason="renegotiating")
    muted = _raise("cap_reached", "acme-cap", acme)
    other_kind = _raise("budget_threshold", "acme-budget", acme)
    other_tenant = _raise("cap_reached", "globex-cap", globex)
    alerts_deliver()

    assert Alert.objects.filter(id=muted.id).exists() and not muted.deliveries.exists()
    sent = {r["alert_id"] for r in hooks.received}
    assert str(muted.id) not in sent
    assert {str(other_kind.id), str(other_tenant.id)} <= sent

    AlertMute.objects.create(tenant=globex, kind="")  # every kind
    assert not _raise("spend_spike", "globex-spike", globex).deliveries.exists()


def test_a_route_target_must_fit_its_channel(acme) -> None:
    with pytest.raises(ValidationError, match="target"):
        AlertRoute(channel="webhook", target="not a url").full_clean()
    with pytest.raises(ValidationError, match="target"):
        AlertRoute(channel="email", target="ops@example.com, nobody").full_clean()
    AlertRoute(channel="email", target="ops@example.com, cfo@example.com").full_clean()
    AlertRoute(channel="webhook", target="https://hooks.example.com/x", tenant=acme).full_clean()


# --- Resolved notices ---------------------------------------------------------------


def test_a_resolved_alert_sends_one_resolved_notice_where_it_went(acme, defaults,
                                                                   hooks) -> None:  # fmt: skip
    AlertRoute.objects.create(tenant=acme, channel="webhook", target=hooks("acme"))
    alert = _raise("metric_warning", "m", acme)
    alerts_deliver()
    later = NOW + timedelta(days=7)

    assert alert_resolve(alert=alert, now=later) is True
    assert alert_resolve(alert=alert, now=later + timedelta(days=1)) is False
    assert alerts_deliver().sent == 3
    assert alerts_deliver().sent == 0

    alert.refresh_from_db()
    assert alert.resolved_at == later
    resolved = [r for r in hooks.received if r["event"] == "resolved"]
    assert sorted(r["path"] for r in resolved) == ["/acme", "/default"]
    assert all(r["body"]["event"] == "alert.resolved" for r in resolved)
    assert all(r["body"]["text"] == "Resolved: alert m" for r in resolved)
    assert resolved[0]["body"]["alert"]["resolved_at"] == later.isoformat()
    assert [m.subject for m in mail.outbox][-1].startswith("[finops] Metric warning (warning): "
                                                           "Resolved: alert m")  # fmt: skip


def test_a_muted_alert_resolves_silently(acme, defaults, hooks) -> None:
    AlertMute.objects.create(tenant=acme, kind="metric_warning")
    alert = _raise("metric_warning", "m", acme)
    assert alert_resolve(alert=alert, now=NOW) is True
    assert not AlertDelivery.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_two_workers_resolving_at_once_send_one_notice(acme, defaults, hooks) -> None:
    alert = _raise("metric_warning", "m", acme)
    alerts_deliver()

    results = run_at_once(4, lambda _: alert_resolve(alert=Alert.objects.get(id=alert.id),
                                                     now=NOW))  # fmt: skip
    run_at_once(4, lambda _: alerts_deliver())

    assert sorted(results) == [False, False, False, True]
    assert AlertDelivery.objects.filter(notice="resolved").count() == 2
    assert [r["event"] for r in hooks.received] == ["triggered", "resolved"]
    assert len(mail.outbox) == 2


# --- The API and the admin ----------------------------------------------------------


def test_the_alerts_api_shows_and_filters_severity(operator, acme, defaults) -> None:
    _raise("cap_reached", "c", acme, severity="critical")
    _raise("budget_threshold", "b", acme, severity="info")
    resolved = _raise("metric_warning", "m", acme)
    alert_resolve(alert=resolved, now=NOW)

    listed = operator.get("/api/v1/alerts").json()["results"]
    assert {a["kind"]: a["severity"] for a in listed} == {
        "cap_reached": "critical",
        "budget_threshold": "info",
        "metric_warning": "warning",
    }
    assert {a["kind"]: a["resolved_at"] for a in listed}["metric_warning"] == NOW.isoformat()
    critical = operator.get("/api/v1/alerts?severity=critical").json()["results"]
    assert [a["kind"] for a in critical] == ["cap_reached"]
    assert "severity" in operator.get("/api/v1/alerts?severity=urgent").json()


def test_a_tenant_key_sees_only_its_own_metric_and_projection_alerts(
    acme_client, operator, acme, globex, defaults
) -> None:
    _raise("metric_warning", "acme-m", acme)
    _raise("projection_overrun", "globex-p", globex)
    _raise("projection_overrun", "all-p", None)

    mine = acme_client.get("/api/v1/alerts").json()["results"]
    assert [a["message"] for a in mine] == ["alert acme-m"]
    assert acme_client.get("/api/v1/alerts?kind=projection_overrun").json()["results"] == []
    assert acme_client.get("/api/v1/alerts?tenant=globex").status_code == 404
    kinds = operator.get("/api/v1/alerts?kind=projection_overrun").json()["results"]
    assert sorted(a["tenant"] or "" for a in kinds) == ["", "globex"]


def test_staff_manage_routes_and_mutes_in_the_admin(acme, defaults) -> None:
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("staff", "s@example.com", "pw"))
    response = staff.post("/admin/billing/alertroute/add/", {
        "kind": "", "min_severity": "warning", "channel": "webhook",
        "target": "https://hooks.example.com/acme", "tenant": acme.pk})  # fmt: skip
    assert response.status_code == 302
    assert AlertRoute.objects.get().tenant == acme
    refused = staff.post("/admin/billing/alertroute/add/", {
        "kind": "", "min_severity": "info", "channel": "webhook", "target": "nope"})  # fmt: skip
    assert refused.status_code == 200 and AlertRoute.objects.count() == 1
    response = staff.post(
        "/admin/billing/alertmute/add/",
        {"tenant": acme.pk, "kind": "cap_reached", "reason": "trial"},
    )
    assert response.status_code == 302
    alert = _raise("cap_reached", "c", acme, severity="critical")
    for path in ("/admin/billing/alertroute/", "/admin/billing/alertmute/",
                 "/admin/billing/alert/?severity__exact=critical",
                 f"/admin/billing/alert/{alert.id}/change/"):  # fmt: skip
        assert staff.get(path).status_code == 200, path
    assert "critical" in staff.get("/admin/billing/alert/").content.decode()
