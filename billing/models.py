from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import models
from django.db.models import Q

from finops.fields import ExactDecimalField
from finops.models import ApiKey, Tenant


class RollupSums(models.Model):
    """What a rollup row adds up. `cost` is exact: the sum of the events' exact costs and
    later cost changes. The columns after `cost` feed the predictive metrics
    (`console.metrics`)."""

    class Grain(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    grain = models.CharField(max_length=4, choices=Grain.choices)
    period_start = models.DateTimeField()
    feature = models.CharField(max_length=128, blank=True)
    model = models.CharField(max_length=200)
    routing_tier = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=64, blank=True)
    # The rate class that priced the calls (the events' own columns; `service_tier` is the
    # effective tier, `batch: true` stored as batch): a row's token sums re-price exactly
    # at its own rates.
    service_tier = models.CharField(max_length=16, default="standard")
    above_tokens = models.BigIntegerField(
        default=0, help_text="The long-context threshold whose rates priced the calls (0: base)."
    )
    off_peak = models.BooleanField(default=False, help_text="Priced at off-peak rates.")
    tag = models.CharField(
        max_length=200,
        blank=True,
        help_text="The value of the event tag FINOPS_REPORT_TAG_KEY names when folded ('': none).",
    )
    calls = models.BigIntegerField(default=0)
    priced_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    grounding_tokens = models.BigIntegerField(default=0)
    wasted_tokens = models.BigIntegerField(default=0)
    queries = models.BigIntegerField(default=0, help_text="Rerank or search units.")
    cost = ExactDecimalField(max_digits=48, decimal_places=30, default=0)
    chunks_retrieved = models.BigIntegerField(default=0)
    chunks_used = models.BigIntegerField(default=0)
    reranked_calls = models.BigIntegerField(default=0, help_text="Calls that ran a reranker.")
    reranker_changed = models.BigIntegerField(
        default=0, help_text="Calls whose reranker changed the order."
    )
    outcome_calls = models.BigIntegerField(default=0, help_text="Calls with a known outcome.")
    correct_calls = models.BigIntegerField(default=0)
    outcome_cost = ExactDecimalField(
        max_digits=48, decimal_places=30, default=0, help_text="Cost of the calls with an outcome."
    )
    session_cost = ExactDecimalField(
        max_digits=48, decimal_places=30, default=0, help_text="Cost of the calls in a session."
    )
    sessions = models.BigIntegerField(
        default=0,
        help_text="Sessions first seen that UTC day for the tenant (counted on the row of the "
        "session's first call of the day).",
    )
    hashed_calls = models.BigIntegerField(default=0, help_text="Calls with a prompt hash.")
    repeat_calls = models.BigIntegerField(
        default=0,
        help_text="Calls whose prompt hash the tenant already sent that UTC day.",
    )
    escalated_calls = models.BigIntegerField(default=0, help_text="Calls marked escalated.")
    cache_known_calls = models.BigIntegerField(default=0, help_text="Calls reporting cache_hit.")
    cache_hit_calls = models.BigIntegerField(
        default=0, help_text="Calls the application's cache answered (cache_hit true)."
    )
    cache_hit_cost = ExactDecimalField(
        max_digits=48, decimal_places=30, default=0, help_text="Cost of the cache_hit calls."
    )

    class Meta:
        abstract = True


class UsageRollup(RollupSums):
    """Usage folded by hour or day and by tenant, feature, model, prompt template, routing
    tier, provider, region, rate class (service tier, long-context threshold, off-peak) and
    the reported tag's value. Written only by `billing.rollups`; `feature` and
    `prompt_template` are keys ('' for none)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    prompt_template = models.CharField(max_length=128, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "grain",
                    "tenant",
                    "period_start",
                    "feature",
                    "model",
                    "prompt_template",
                    "routing_tier",
                    "provider",
                    "region",
                    "service_tier",
                    "above_tokens",
                    "off_peak",
                    "tag",
                ],
                name="usage_rollup_unique_group",
            )  # fmt: skip
        ]
        indexes = [models.Index(fields=["grain", "period_start"], name="usage_rollup_period")]

    def __str__(self) -> str:
        return f"{self.grain} {self.period_start:%Y-%m-%d %H:00} {self.tenant_id} {self.feature}"


class FeatureRollup(RollupSums):
    """The same sums across tenants, by feature, model, routing tier, the tenants' tier at
    the time of the calls and the same provider, region, rate class and tag: what reports
    over every tenant read (a few rows a day, however many tenants). Written with
    `UsageRollup`, in the same transaction."""

    tenant_tier = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "grain",
                    "period_start",
                    "feature",
                    "model",
                    "routing_tier",
                    "tenant_tier",
                    "provider",
                    "region",
                    "service_tier",
                    "above_tokens",
                    "off_peak",
                    "tag",
                ],
                name="feature_rollup_unique_group",
            )  # fmt: skip
        ]

    def __str__(self) -> str:
        return f"{self.grain} {self.period_start:%Y-%m-%d %H:00} {self.feature} {self.model}"


class DailyKey(models.Model):
    """A session or prompt hash that a tenant used on a UTC day, written by the rollups in
    their transaction: how they count each session once per day and tell a repeated prompt
    from a first one, without keeping the events' strings. `key` is one 64-bit hash of the
    tenant, the kind (session or prompt hash) and the text: two rows per event at most,
    16 bytes each, so that ten million events' keys stay cheap to write and to look up.

    On PostgreSQL the table is unlogged (migration 0009): its writes skip the write-ahead
    log, and a crash empties it. The rollups then record the keys of the events already
    folded again from the ledger (see `billing.rollups.KEYS_WHOLE`)."""

    # Day first: old days are pruned by a range of the primary key.
    pk = models.CompositePrimaryKey("day", "key")
    day = models.DateField()
    key = models.BigIntegerField()

    def __str__(self) -> str:
        return f"key {self.key} on {self.day}"


class RollupWatermark(models.Model):
    """How far the rollups have read the ledger, moved in the same transaction as they.

    On PostgreSQL both positions are transaction ids (everything below has been folded);
    on SQLite they are the last folded event id and cost change id.
    """

    name = models.CharField(max_length=32, unique=True)
    events_position = models.BigIntegerField(default=0)
    changes_position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.events_position}/{self.changes_position}"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


# An end-user field set to this applies to each end user on their own.
EACH_USER = "*"


class LimitScope(models.Model):
    """What a budget or rate limit covers: every dimension it names must match a call
    (none: all usage)."""

    name = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="%(class)ss"
    )
    feature = models.ForeignKey(
        "ingestion.Feature", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    model = models.CharField(max_length=200, blank=True)
    prompt_template = models.ForeignKey(
        "ingestion.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    user = models.CharField(
        max_length=200, blank=True, help_text="An end user, or * for each end user."
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="%(class)ss"
    )

    class Meta:
        abstract = True

    @property
    def scope_label(self) -> str:
        """What it covers, for people."""
        user = self.user
        parts = [
            f"tenant {self.tenant.slug}" if self.tenant_id else "",
            f"feature {self.feature.key}" if self.feature_id else "",
            f"model {self.model}" if self.model else "",
            f"prompt {self.prompt_template.key}" if self.prompt_template_id else "",
            ("each end user" if user == EACH_USER else f"end user {user}") if user else "",
            f"API key {self.api_key.prefix}" if self.api_key_id else "",
        ]
        return ", ".join(p for p in parts if p) or "all usage"


class Budget(LimitScope):
    """A spend limit on a scope (any combination of tenant, feature, model, prompt
    template, end user and API key; none of them: all usage) for each hour, day or
    month. `user` is one end user, or `*` for each end user on their own.

    Crossing a threshold (percent of the amount) raises one alert per threshold and
    period. `action` says what the guard does at 100 percent.
    """

    class Period(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"
        MONTH = "month", "Month"

    class Action(models.TextChoices):
        NOTIFY = "notify", "Notify"
        DOWNGRADE = "downgrade", "Downgrade to the fallback model"
        BLOCK = "block", "Block"

    period = models.CharField(max_length=8, choices=Period.choices)
    amount = ExactDecimalField(max_digits=20, decimal_places=6)
    thresholds = models.JSONField(default=default_thresholds)
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.NOTIFY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name or f"{self.scope_label} per {self.period}"


class RateLimit(LimitScope):
    """Requests, tokens (input + output) or cost per minute, hour or day on a scope (the
    same dimensions as a budget). A call that would pass one is answered `block` with
    `error_type` `rate_limited` and `retry_after`, the seconds until its window ends.
    Requests are counted by the guard as it allows them; tokens and cost are what the
    events of the window add up to (cost also counts the calls still in flight)."""

    class Window(models.TextChoices):
        MINUTE = "minute", "Minute"
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    window = models.CharField(max_length=8, choices=Window.choices, default=Window.MINUTE)
    requests = models.PositiveIntegerField(null=True, blank=True)
    tokens = models.PositiveBigIntegerField(null=True, blank=True)
    cost = ExactDecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(requests__isnull=False)
                | Q(tokens__isnull=False)
                | Q(cost__isnull=False),
                name="rate_limit_sets_a_limit",
            )  # fmt: skip
        ]

    def __str__(self) -> str:
        return self.name or f"{self.scope_label} per {self.window}"


class KillSwitch(models.Model):
    """A tripped kill switch: the guard downgrades the calls it covers to the feature's
    fallback model until it is cleared. With a tenant it covers that tenant's calls of the
    feature (tripped by the spike detection on that tenant's own spend); without one, the
    whole feature (set by staff only)."""

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="kill_switches"
    )
    feature = models.ForeignKey(
        "ingestion.Feature", on_delete=models.CASCADE, related_name="kill_switches"
    )
    tripped_at = models.DateTimeField()
    reason = models.TextField()
    automatic = models.BooleanField(default=True, help_text="Tripped by spike detection.")
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-tripped_at", "-id"]
        verbose_name_plural = "kill switches"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "feature"],
                condition=Q(cleared_at__isnull=True),
                nulls_distinct=False,
                name="kill_switch_one_active",
            )
        ]

    def __str__(self) -> str:
        whose = self.tenant.slug if self.tenant_id else "every tenant"
        return f"{self.feature.key} for {whose}"


class GuardReservation(models.Model):
    """A call the guard let through whose event has not arrived, recorded beside Redis so
    a Redis that loses its state gets it back, with the counters it was reserved on.
    Deleted in the transaction that stores the call's event; past `expires_ms` it no
    longer counts. Unlogged on PostgreSQL, with a GIN index on `counters` (migration
    0012)."""

    reservation = models.CharField(max_length=32, primary_key=True)
    counters = models.JSONField(help_text="The counters' names.")
    nanos = models.BigIntegerField(help_text="The reserved cost in billionths.")
    expires_ms = models.BigIntegerField(help_text="Unix time in milliseconds.")

    class Meta:
        indexes = [models.Index(fields=["expires_ms"], name="guard_reservation_expiry")]

    def __str__(self) -> str:
        return f"{self.reservation} on {len(self.counters)} counter(s)"


class Severity(models.TextChoices):
    """How urgent an alert is, lowest first (`SEVERITY_RANK`)."""

    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class Alert(models.Model):
    """Raised once: `dedup_key` names the rule, scope, period and threshold. An alert on a
    condition that can clear (a metric in warning) is resolved once: `resolved_at`."""

    class Kind(models.TextChoices):
        BUDGET_THRESHOLD = "budget_threshold", "Budget threshold"
        SPEND_SPIKE = "spend_spike", "Spend spike"
        CAP_REACHED = "cap_reached", "Cap reached"
        TENANT_THROTTLED = "tenant_throttled", "Tenant throttled"
        METRIC_WARNING = "metric_warning", "Metric warning"
        PROJECTION_OVERRUN = "projection_overrun", "Projection overrun"

    Severity = Severity

    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    feature = models.CharField(max_length=128, blank=True)
    model = models.CharField(max_length=200, blank=True)
    prompt_template = models.CharField(max_length=128, blank=True)
    budget = models.ForeignKey(
        Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    threshold = models.IntegerField(null=True, blank=True)
    value = ExactDecimalField(max_digits=48, decimal_places=30, null=True, blank=True)
    message = models.TextField()
    dedup_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"], name="alert_tenant_time")]

    def __str__(self) -> str:
        return self.message


class Delivery(models.Model):
    """One notification on one channel, sent once: claimed, sent, then marked
    (`billing.alerts.deliveries_send`)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending (claimed by a worker)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class AlertDelivery(Delivery):
    """One notice of an alert (raised, or later resolved) to one target of one channel;
    sent once. `target` is a webhook URL or comma-separated e-mail addresses, copied from
    the route (or the default settings) when the alert was raised; blank on rows from
    before routes: the default settings."""

    class Notice(models.TextChoices):
        TRIGGERED = "triggered", "Triggered"
        RESOLVED = "resolved", "Resolved"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    notice = models.CharField(max_length=16, choices=Notice.choices, default=Notice.TRIGGERED)
    route = models.ForeignKey(
        "AlertRoute", null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    target = models.CharField(max_length=1000, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "notice", "channel", "target"], name="alert_delivery_once"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="alert_delivery_due")]

    def __str__(self) -> str:
        notice = " (resolved)" if self.notice == self.Notice.RESOLVED else ""
        return f"{self.alert_id}{notice} by {self.channel}: {self.status}"


class AlertRoute(models.Model):
    """Where alerts go. A staff route (no tenant) gets every alert of its kind (blank:
    every kind) at or above `min_severity`; the default settings
    (`FINOPS_ALERT_WEBHOOK_URL`, `FINOPS_ALERT_EMAILS`) get the alerts of the kinds no staff
    route names. A tenant's route gets the alerts about that tenant only."""

    kind = models.CharField(
        max_length=32, choices=Alert.Kind.choices, blank=True, help_text="Blank: every kind."
    )
    min_severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.INFO)
    channel = models.CharField(max_length=16, choices=Delivery.Channel.choices)
    target = models.CharField(
        max_length=1000, help_text="The webhook URL, or comma-separated e-mail addresses."
    )
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_routes",
        help_text="Blank: a staff route. Set: the alerts about this tenant, and no other.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant_id", "kind", "id"]

    def __str__(self) -> str:
        whose = self.tenant.slug if self.tenant_id else "staff"
        return f"{self.kind or 'every kind'} ({self.min_severity}+) to {whose} by {self.channel}"

    def clean(self) -> None:
        try:
            if self.channel == Delivery.Channel.WEBHOOK:
                URLValidator(schemes=["http", "https"])(self.target)
            else:
                for address in self.target.split(","):
                    validate_email(address.strip())
        except ValidationError as error:
            raise ValidationError({"target": error.messages}) from None


class AlertMute(models.Model):
    """Staff mute an alert kind (blank: every kind) for one tenant: its alerts are still
    stored, as history, but notify nobody."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_mutes")
    kind = models.CharField(
        max_length=32, choices=Alert.Kind.choices, blank=True, help_text="Blank: every kind."
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="alert_mute_once")]

    def __str__(self) -> str:
        return f"{self.kind or 'every kind'} muted for {self.tenant}"


class FeatureCap(models.Model):
    """A contractual monthly cap on one tenant's use of one feature."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="feature_caps")
    feature = models.ForeignKey("ingestion.Feature", on_delete=models.CASCADE, related_name="+")
    monthly_cap = ExactDecimalField(max_digits=20, decimal_places=6)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "feature"], name="feature_cap_once")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} / {self.feature}: {self.monthly_cap}"
