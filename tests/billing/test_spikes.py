"""Spend spikes per tenant (on all its usage, a feature, a model, a prompt template) and
the per-tenant kill switches they trip; staff's switch for every tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.http import HttpResponse

from billing.guard import guard_decide
from billing.killswitches import active_kill_switch
from billing.models import Alert, KillSwitch
from billing.rollups import rollups_update
from billing.spikes import spikes_detect
from finops.models import Tenant
from ingestion.models import Feature
from tests.conftest import event, post_events

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("fresh_guard"),  # kill switches read afresh, as every policy
]

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0)
LAST_HOUR = HOUR - timedelta(hours=1)
MODEL = "gpt-4o-2024-08-06"  # $2.50 per 1M input tokens
CHEAP = "gpt-4o-mini-2024-07-18"  # $0.15 per 1M input tokens
FALLBACK = CHEAP
SUMMARIZE = "document_summarization"


def _calls(client, at: datetime, count: int, prefix: str, *, tenant: str = "acme",
           feature: str = SUMMARIZE, model: str = MODEL, prompt: str = "summarize-v3",
           tokens: int = 1_000_000) -> None:  # fmt: skip
    """`count` calls in the hour of `at` (of $2.50 each by default)."""
    events = [
        event(event_id=f"{prefix}-{tenant}-{feature}-{model}-{prompt}-{at:%Y%m%d%H}-{i}",
              tenant=tenant, feature=feature, model=model, prompt_template=prompt,
              timestamp=(at + timedelta(minutes=i)).isoformat(), input_tokens=tokens,
              cached_input_tokens=0, output_tokens=0)
        for i in range(count)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202


def _week(client, last_hour: datetime = LAST_HOUR, *, tenant: str = "acme",
          feature: str = SUMMARIZE, model: str = MODEL, prompt: str = "summarize-v3",
          tokens: int = 1_000_000) -> None:  # fmt: skip
    """One call (of $2.50 by default) in each of the 168 hours before `last_hour`."""
    events = [
        event(event_id=f"week-{tenant}-{feature}-{model}-{prompt}-{h}", tenant=tenant,
              feature=feature, model=model, prompt_template=prompt,
              timestamp=(last_hour - timedelta(hours=h)).isoformat(), input_tokens=tokens,
              cached_input_tokens=0, output_tokens=0)
        for h in range(1, 169)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202


def _hourly_alerts() -> dict[str, str]:
    """The hourly spike alerts by the scope in their dedup key, their messages."""
    return {
        a.dedup_key.split(":", 3)[3].rsplit(":", 1)[0]: a.message
        for a in Alert.objects.filter(dedup_key__startswith="spike:hour:")
    }


def _decision(tenant: Tenant) -> tuple[str, str, str | None]:
    answer = guard_decide(tenant=tenant, feature_key=SUMMARIZE, model=MODEL)
    return answer.decision, answer.model, answer.error_type


# --- Detection ------------------------------------------------------------------------


def test_a_tenants_hour_at_4x_its_own_average_raises_its_alerts_once(
    operator, acme, globex
) -> None:
    # Globex spends ten times what acme does on the same feature: across tenants, acme's
    # $10 hour (against $27.50 an hour in all) would be no spike at all.
    _week(operator, tenant="acme")
    _week(operator, tenant="globex", tokens=10_000_000)
    _calls(operator, LAST_HOUR, 4, "spike", tenant="acme")
    _calls(operator, LAST_HOUR, 1, "normal", tenant="globex", tokens=10_000_000)
    rollups_update()

    first = spikes_detect(now=NOW)
    again = spikes_detect(now=NOW)

    # All acme's usage, its feature, model and prompt template each spiked.
    assert (first.alerts, again.alerts) == (4, 0)
    alerts = Alert.objects.filter(kind="spend_spike")
    assert {a.tenant_id for a in alerts} == {acme.id}
    assert {a.period_start for a in alerts} == {LAST_HOUR}
    feature_alert = alerts.get(feature=SUMMARIZE)
    assert feature_alert.dedup_key == (
        f"spike:hour:{acme.id}:feature={SUMMARIZE}:{LAST_HOUR:%Y%m%dT%H}"
    )
    assert feature_alert.value == Decimal(10)
    assert _hourly_alerts() == {
        "tenant": "acme (all usage): 10.00 USD in the last hour, 4.0x its 7-day hourly "
        "average (2.50 USD).",
        f"feature={SUMMARIZE}": f"acme, feature {SUMMARIZE}: 10.00 USD in the last hour, "
        "4.0x its 7-day hourly average (2.50 USD).",
        f"model={MODEL}": f"acme, model {MODEL}: 10.00 USD in the last hour, 4.0x its 7-day "
        "hourly average (2.50 USD).",
        "prompt=summarize-v3": "acme, prompt template summarize-v3: 10.00 USD in the last "
        "hour, 4.0x its 7-day hourly average (2.50 USD).",
    }


def test_a_model_spike_alone_raises_only_the_model_alert(operator, acme) -> None:
    _week(operator, tokens=10_000_000)  # $25 an hour on gpt-4o
    _week(operator, model=CHEAP, tokens=10_000_000)  # $1.50 an hour on gpt-4o-mini
    _calls(operator, LAST_HOUR, 1, "steady", tokens=10_000_000)
    _calls(operator, LAST_HOUR, 4, "spike", model=CHEAP, tokens=10_000_000)
    rollups_update()

    assert spikes_detect(now=NOW).alerts == 1
    alert = Alert.objects.get()
    assert (alert.tenant, alert.model, alert.feature, alert.prompt_template) == (
        acme, CHEAP, "", "")  # fmt: skip
    assert alert.message == (
        f"acme, model {CHEAP}: 6.00 USD in the last hour, 4.0x its 7-day hourly average (1.50 USD)."
    )


def test_a_prompt_template_spike_alone_raises_only_the_prompt_alert(operator, acme) -> None:
    _week(operator, tokens=10_000_000)
    _week(operator, prompt="classify-v1")
    _calls(operator, LAST_HOUR, 1, "steady", tokens=10_000_000)
    _calls(operator, LAST_HOUR, 5, "spike", prompt="classify-v1")
    rollups_update()

    assert spikes_detect(now=NOW).alerts == 1
    alert = Alert.objects.get()
    assert (alert.tenant, alert.prompt_template, alert.model) == (acme, "classify-v1", "")
    assert alert.dedup_key == f"spike:hour:{acme.id}:prompt=classify-v1:{LAST_HOUR:%Y%m%dT%H}"
    assert "5.0x its 7-day hourly average (2.50 USD)" in alert.message


def test_an_hour_below_the_floor_never_alarms(operator, acme, settings) -> None:
    # $0.15 an hour, then $0.60: four times the baseline, but cents.
    _week(operator, model=CHEAP)
    _calls(operator, LAST_HOUR, 4, "spike", model=CHEAP)
    rollups_update()
    assert spikes_detect(now=NOW).alerts == 0

    settings.FINOPS_SPIKE_MIN_COST = Decimal("0.60")
    assert spikes_detect(now=NOW).alerts == 4
    assert "0.60 USD in the last hour" in Alert.objects.get(model=CHEAP).message


def test_no_spike_without_a_baseline(operator, acme) -> None:
    _calls(operator, LAST_HOUR, 20, "new", feature="brand_new_feature")
    rollups_update()
    assert spikes_detect(now=NOW).alerts == 0


def test_the_hour_after_midnight_is_called_the_last_hour(operator, acme) -> None:
    """Between 01:00 and 02:00 UTC the last complete hour starts at midnight, as the day
    does: it is still 'the last hour'."""
    now = HOUR.replace(hour=1, minute=30) - timedelta(days=1)
    last_hour = HOUR.replace(hour=0) - timedelta(days=1)
    _week(operator, last_hour)
    _calls(operator, last_hour, 4, "spike")
    rollups_update()
    assert spikes_detect(now=now).alerts >= 1
    alert = Alert.objects.get(period_start=last_hour, feature=SUMMARIZE,
                              dedup_key__startswith="spike:hour")  # fmt: skip
    assert "in the last hour, 4.0x" in alert.message


# --- Kill switches --------------------------------------------------------------------

# The clock of the first check reads four hours ago, so that "two hours later" is still
# in the past for ingestion.
THEN = HOUR - timedelta(hours=4) + timedelta(minutes=5)
SPIKE_HOUR = HOUR - timedelta(hours=5)


@pytest.fixture
def features(db: None) -> None:
    Feature.objects.create(key=SUMMARIZE, fallback_model=FALLBACK, kill_switch_enabled=True)
    Feature.objects.create(key="chat_assistant", kill_switch_enabled=False)


def _acme_bursts(operator) -> None:
    """Acme and globex spend alike on both features; acme's last hour runs at 4x."""
    for tenant in ("acme", "globex"):
        for feature in (SUMMARIZE, "chat_assistant"):
            _week(operator, SPIKE_HOUR, tenant=tenant, feature=feature)
            _calls(operator, SPIKE_HOUR, 4 if tenant == "acme" else 1, "spike", tenant=tenant,
                   feature=feature)  # fmt: skip
    rollups_update()


def test_the_kill_switch_trips_for_the_spiking_tenant_only(
    operator, acme, globex, features
) -> None:
    _acme_bursts(operator)

    assert spikes_detect(now=THEN).kill_switches_on == 1
    assert spikes_detect(now=THEN).kill_switches_on == 0
    switch = KillSwitch.objects.get()
    assert (switch.tenant, switch.feature.key, switch.automatic, switch.tripped_at) == (
        acme, SUMMARIZE, True, THEN)  # fmt: skip
    assert switch.cleared_at is None
    assert switch.reason == (
        f"10.00 USD in the hour from {SPIKE_HOUR:%Y-%m-%d %H:%M} UTC, 4.0x its 7-day hourly "
        "average of 2.50 USD (the switch trips above 3x)"
    )
    summarize = Feature.objects.get(key=SUMMARIZE)
    assert active_kill_switch(acme.id, summarize.id) == switch
    assert active_kill_switch(globex.id, summarize.id) is None


def test_acmes_burst_never_changes_globexs_guard_decision(operator, acme, globex, features) -> None:
    before = _decision(globex)
    _acme_bursts(operator)
    spikes_detect(now=THEN)

    assert _decision(globex) == before == ("allow", MODEL, None)
    assert _decision(acme) == ("downgrade", FALLBACK, "spend_spike")
    reason = guard_decide(tenant=acme, feature_key=SUMMARIZE, model=MODEL).reason
    assert reason.startswith(
        f"The kill switch of {SUMMARIZE} for acme tripped at {THEN:%Y-%m-%d %H:%M} UTC on a "
        "spend spike: 10.00 USD in the hour from "
    )


def test_the_kill_switch_clears_when_the_tenants_rate_falls_back(
    operator, acme, globex, features
) -> None:
    _acme_bursts(operator)
    spikes_detect(now=THEN)
    summarize = Feature.objects.get(key=SUMMARIZE)
    staff = [
        KillSwitch.objects.create(feature=summarize, tenant=tenant, automatic=False,
                                  tripped_at=THEN, reason="Set by staff.")
        for tenant in (None, globex)
    ]  # fmt: skip

    # An hour later the hour after the trip is not complete yet: the switch stays.
    assert spikes_detect(now=THEN + timedelta(hours=1)).kill_switches_off == 0
    # Two hours later the last complete hour is back to one call.
    _calls(operator, SPIKE_HOUR + timedelta(hours=2), 1, "calm")
    rollups_update()
    later = THEN + timedelta(hours=2)
    assert spikes_detect(now=later).kill_switches_off == 1
    assert KillSwitch.objects.get(tenant=acme).cleared_at == later
    # Staff's switches stay until staff clear them.
    assert set(KillSwitch.objects.filter(cleared_at__isnull=True)) == set(staff)


def test_turning_the_kill_switch_off_lifts_the_tenants_switches(
    operator, acme, globex, features
) -> None:
    _acme_bursts(operator)
    spikes_detect(now=THEN)
    summarize = Feature.objects.get(key=SUMMARIZE)
    Feature.objects.filter(key=SUMMARIZE).update(kill_switch_enabled=False)
    # The guard stops obeying it at once; the next run clears it.
    assert active_kill_switch(acme.id, summarize.id) is None
    assert spikes_detect(now=THEN).kill_switches_off == 1
    assert KillSwitch.objects.get().cleared_at == THEN


# --- Staff: the switch for every tenant -----------------------------------------------


@pytest.fixture
def manager(make_client):
    return make_client(None, ["read", "manage"])


def test_staff_set_and_clear_the_switch_for_every_tenant_over_the_api(
    manager, operator, acme, globex, features
) -> None:
    url = f"/api/v1/features/{SUMMARIZE}"
    assert manager.get(url).json()["kill_switches"] == []

    answer = manager.patch(url, {"kill_switch_all": True}, format="json")

    assert answer.status_code == 200
    switch = KillSwitch.objects.get()
    assert (switch.tenant, switch.automatic) == (None, False)
    assert answer.json()["kill_switches"] == [
        {"tenant": None, "tripped_at": switch.tripped_at.isoformat().replace("+00:00", "Z"),
         "automatic": False, "reason": f"Set by API key {manager.key.split('_')[1]}."}
    ]  # fmt: skip
    assert "kill_switch_all" not in answer.json()
    assert _decision(acme) == _decision(globex) == ("downgrade", FALLBACK, "spend_spike")
    reason = guard_decide(tenant=globex, feature_key=SUMMARIZE, model=MODEL).reason
    assert f"The kill switch of {SUMMARIZE} for every tenant was set by staff at " in reason

    # Setting it again keeps the one switch; false clears it.
    assert manager.patch(url, {"kill_switch_all": True}, format="json").status_code == 200
    assert KillSwitch.objects.count() == 1
    cleared = manager.patch(url, {"kill_switch_all": False}, format="json")
    assert cleared.status_code == 200 and cleared.json()["kill_switches"] == []
    assert KillSwitch.objects.get().cleared_at is not None
    assert _decision(globex) == ("allow", MODEL, None)


def test_a_tenants_switch_is_listed_with_its_slug(
    manager, operator, acme, globex, features
) -> None:
    _acme_bursts(operator)
    spikes_detect(now=THEN)
    listed = manager.get(f"/api/v1/features/{SUMMARIZE}").json()["kill_switches"]
    assert [(s["tenant"], s["automatic"]) for s in listed] == [("acme", True)]
    assert listed[0]["reason"].startswith("10.00 USD in the hour from ")
    # Turning the feature's kill switch off lifts the tenants' switches.
    answer = manager.patch(f"/api/v1/features/{SUMMARIZE}", {"kill_switch_enabled": False},
                           format="json")  # fmt: skip
    assert answer.json()["kill_switches"] == []
    assert KillSwitch.objects.get().cleared_at is not None


def test_only_an_operator_manage_key_sets_the_switch_for_every_tenant(
    make_client, manager, operator, acme, features
) -> None:
    url = f"/api/v1/features/{SUMMARIZE}"
    tenant_key = make_client(acme, ["read", "manage"])
    assert tenant_key.patch(url, {"kill_switch_all": True}, format="json").status_code == 403
    assert operator.patch(url, {"kill_switch_all": True}, format="json").status_code == 403
    refused = {
        "kill_switch_active": ["Unknown field."],
        "kill_switches": ["This field cannot be set."],
    }
    answer = manager.patch(url, {"kill_switch_active": True, "kill_switches": []}, format="json")
    assert answer.status_code == 400 and answer.json() == refused
    answer = manager.patch(url, {"kill_switch_all": "maybe"}, format="json")
    assert answer.status_code == 400 and set(answer.json()) == {"kill_switch_all"}
    assert not KillSwitch.objects.exists()


def test_staff_add_and_clear_switches_in_the_admin(admin_client, acme, features) -> None:
    summarize = Feature.objects.get(key=SUMMARIZE)

    def add(tenant: str | int, reason: str) -> HttpResponse:
        form = {"feature": summarize.id, "tenant": tenant, "reason": reason}
        return admin_client.post("/admin/billing/killswitch/add/", form)

    assert add("", "Vendor outage").status_code == 302
    switch = KillSwitch.objects.get()
    assert (switch.tenant, switch.automatic, switch.reason) == (None, False, "Vendor outage")
    again = add("", "Twice")
    assert again.status_code == 200 and "is already active" in again.content.decode()
    assert add(acme.id, "Runaway agent").status_code == 302
    assert KillSwitch.objects.count() == 2

    listing = admin_client.get("/admin/billing/killswitch/?active=yes").content.decode()
    assert "every tenant" in listing and "acme" in listing
    page = admin_client.get(f"/admin/ingestion/feature/{summarize.id}/change/").content.decode()
    assert "for every tenant since" in page and "for acme since" in page

    ids = list(KillSwitch.objects.values_list("id", flat=True))
    action = {"action": "clear", "_selected_action": ids}
    cleared = admin_client.post("/admin/billing/killswitch/", action)
    assert cleared.status_code == 302
    assert not KillSwitch.objects.filter(cleared_at__isnull=True).exists()
