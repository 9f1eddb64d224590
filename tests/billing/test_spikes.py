from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import Alert
from billing.rollups import rollups_update
from billing.spikes import spikes_detect
from ingestion.models import Feature
from tests.conftest import event, post_events

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0)
LAST_HOUR = HOUR - timedelta(hours=1)


def _calls(client, feature: str, at: datetime, count: int, prefix: str) -> None:
    """`count` calls of $2.50 each."""
    events = [
        event(event_id=f"{prefix}-{feature}-{at:%Y%m%d%H}-{i}", feature=feature,
              timestamp=(at + timedelta(minutes=i)).isoformat(),
              input_tokens=1_000_000, cached_input_tokens=0, output_tokens=0)
        for i in range(count)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202


def _week_of_traffic(client, feature: str, last_hour: datetime = LAST_HOUR) -> None:
    """One $2.50 call in each of the 168 hours before `last_hour`."""
    events = [
        event(event_id=f"week-{feature}-{h}", feature=feature,
              timestamp=(last_hour - timedelta(hours=h)).isoformat(),
              input_tokens=1_000_000, cached_input_tokens=0, output_tokens=0)
        for h in range(1, 169)
    ]  # fmt: skip
    assert post_events(client, {"events": events}).status_code == 202


def test_an_hour_at_4x_the_weekly_average_raises_one_spike_alert(operator, acme) -> None:
    _week_of_traffic(operator, "document_summarization")
    _calls(operator, "document_summarization", LAST_HOUR, 4, "spike")
    _week_of_traffic(operator, "chat_assistant")
    _calls(operator, "chat_assistant", LAST_HOUR, 1, "normal")
    rollups_update()

    first = spikes_detect(now=NOW)
    again = spikes_detect(now=NOW)

    assert (first.alerts, again.alerts) == (1, 0)
    alert = Alert.objects.get()
    assert alert.kind == "spend_spike" and alert.feature == "document_summarization"
    assert alert.message == (
        "document_summarization: 10.00 USD in the last hour, 4.0x its 7-day hourly average "
        "(2.50 USD)."
    )
    assert alert.period_start == LAST_HOUR


def test_no_spike_without_a_baseline(operator, acme) -> None:
    _calls(operator, "brand_new_feature", LAST_HOUR, 20, "new")
    rollups_update()
    assert spikes_detect(now=NOW).alerts == 0


def test_the_kill_switch_trips_on_a_spike_and_clears_when_the_rate_falls_back(
    operator, acme
) -> None:
    # The clock of the first check reads four hours ago, so that "two hours later" is
    # still in the past for ingestion.
    then = HOUR - timedelta(hours=4) + timedelta(minutes=5)
    last_hour = HOUR - timedelta(hours=5)
    Feature.objects.create(key="document_summarization", fallback_model="gpt-4o-mini",
                           kill_switch_enabled=True)  # fmt: skip
    Feature.objects.create(key="chat_assistant", kill_switch_enabled=False)
    for feature in ("document_summarization", "chat_assistant"):
        _week_of_traffic(operator, feature, last_hour)
        _calls(operator, feature, last_hour, 4, "spike")
    rollups_update()

    assert spikes_detect(now=then).kill_switches_on == 1
    tripped = Feature.objects.get(key="document_summarization")
    assert tripped.kill_switch_active_since == then
    assert Feature.objects.get(key="chat_assistant").kill_switch_active_since is None

    # Two hours later the last complete hour is back to one call.
    _calls(operator, "document_summarization", last_hour + timedelta(hours=2), 1, "calm")
    rollups_update()
    assert spikes_detect(now=then + timedelta(hours=2)).kill_switches_off == 1
    assert Feature.objects.get(key="document_summarization").kill_switch_active_since is None


def test_the_hour_after_midnight_is_called_the_last_hour(operator, acme) -> None:
    """Between 01:00 and 02:00 UTC the last complete hour starts at midnight, as the day
    does: it is still 'the last hour'."""
    now = HOUR.replace(hour=1, minute=30) - timedelta(days=1)
    last_hour = HOUR.replace(hour=0) - timedelta(days=1)
    _week_of_traffic(operator, "document_summarization", last_hour=last_hour)
    _calls(operator, "document_summarization", last_hour, 4, "spike")
    rollups_update()
    assert spikes_detect(now=now).alerts >= 1
    alert = Alert.objects.get(period_start=last_hour, dedup_key__startswith="spike:hour")
    assert "in the last hour, 4.0x" in alert.message
