"""What `GET /metrics` reports: the counters every process keeps (finops.metrics), and
the state of the service measured once per scrape, by the process that answers it.

The counters of all gunicorn workers are added up when `PROMETHEUS_MULTIPROC_DIR` is
set (prometheus-client's multiprocess mode); without it, the answering process's own.
The scrape-time families are computed here, per scrape, never registered in a process's
registry: each is reported once whichever worker answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

from celery import current_app
from django.utils import timezone
from kombu.exceptions import ChannelError
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from billing.selectors import alert_delivery_counts, rollup_lag_seconds, rollup_last_run_get
from console.selectors import digest_delivery_counts

logger = logging.getLogger(__name__)

# Brokers whose queue length is cheap to read: Redis (LLEN of the queue's lists) and
# kombu's file-system transport (its message files). Others are not asked.
QUEUE_LENGTH_SCHEMES = ("redis", "rediss", "filesystem")
# A scrape never waits long on a broker that does not answer.
BROKER_TIMEOUT_SECONDS = 2.0


def celery_queue_length() -> tuple[str, int] | None:
    """The Celery default queue and the messages waiting in it, or None for a broker
    not in QUEUE_LENGTH_SCHEMES."""
    conf = current_app.conf
    if str(conf.broker_read_url).partition("://")[0] not in QUEUE_LENGTH_SCHEMES:
        return None
    queue = conf.task_default_queue
    # One connection attempt, not kombu's retries without end.
    timeouts = {"socket_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "max_retries": 0, "interval_start": 0}  # fmt: skip
    with current_app.connection_for_read(
        connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=timeouts
    ) as connection:
        channel = connection.default_channel
        try:
            # A passive declare reads the length: `LLEN` on Redis, a count of the
            # queue's files on the file system.
            return queue, channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:
            return queue, 0  # Redis drops an empty queue's key: nothing waits


def _rollup() -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "finops_rollup_lag_seconds",
        "Age of the oldest received event no rollup run has folded yet (0: all folded).",
    )
    lag.add_metric([], rollup_lag_seconds(now=timezone.now()))
    yield lag
    last_run = rollup_last_run_get()
    if last_run is not None:
        yield GaugeMetricFamily(
            "finops_rollup_last_run_timestamp_seconds",
            "When a rollup run last committed (Unix time).",
            value=last_run.timestamp(),
        )


def _deliveries() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "finops_deliveries_unsent",
        "Alert and digest deliveries not sent, per kind and status (pending, sending, failed).",
        labels=["kind", "status"],
    )
    for kind, counts in (("alert", alert_delivery_counts()), ("digest", digest_delivery_counts())):
        for status, count in counts.items():
            family.add_metric([kind, status], count)
    yield family


def _queue() -> Iterator[Metric]:
    length = celery_queue_length()
    if length is None:
        return
    family = GaugeMetricFamily(
        "finops_celery_queue_length",
        "Tasks waiting in the Celery default queue.",
        labels=["queue"],
    )
    family.add_metric([length[0]], length[1])
    yield family


class ServiceStateCollector:
    """The rollups' lag, the unsent deliveries and the Celery queue, read at scrape time.
    A part that fails (the broker away) is left out of the scrape and logged; the rest,
    and the counters, are still reported."""

    parts: tuple[Callable[[], Iterator[Metric]], ...] = (_rollup, _deliveries, _queue)

    def collect(self) -> Iterator[Metric]:
        for part in self.parts:
            try:
                metrics = list(part())
            except Exception:  # noqa: BLE001 - one part's failure must not fail the scrape
                logger.exception("metrics: %s could not be read", part.__name__.lstrip("_"))
                continue
            yield from metrics


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: every process's counters (multiprocess mode) or this
    process's, and the service's state."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(ServiceStateCollector())
    return registry
