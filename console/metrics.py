"""The predictive metrics of the weekly review, read from the rollups.

Each metric has a value, the threshold of the weekly review and a status: `warning` when
the value is past its threshold, `healthy` otherwise, `no_data` when the window holds
nothing to measure it by. A window is read from the daily rollups for its whole days and
from the hourly ones for the hours at its edges, so a metric costs a few hundred rows
whatever the number of events behind them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings

from billing.selectors import window_sums_by_feature_model_tier
from finops.models import Tenant
from ingestion.models import Feature

HEALTHY = "healthy"
WARNING = "warning"
NO_DATA = "no_data"

_RATIO = Decimal("0.0001")
# The precision the metrics keep their amounts to (a millionth), not a format for people.
_MICROS = Decimal("0.000001")

_COUNTS = (
    "calls", "input_tokens", "output_tokens", "chunks_retrieved", "chunks_used",
    "reranked_calls", "reranker_changed", "outcome_calls", "correct_calls", "sessions",
    "hashed_calls", "repeat_calls",
)  # fmt: skip
_MONEYS = ("cost", "outcome_cost", "session_cost")


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) on hour boundaries, for one tenant or all, one feature or all."""

    start: datetime
    end: datetime
    tenant: Tenant | None = None
    feature: str | None = None
    # Only the usage of these slices: {"region": "eu", "service_tier": "batch", ...}.
    slices: tuple[tuple[str, str], ...] = ()

    def previous(self) -> Window:
        length = self.end - self.start
        return replace(self, start=self.start - length, end=self.start)


@dataclass(slots=True)
class Group:
    """The window's sums for one feature, model and routing tier."""

    feature: str
    model: str
    routing_tier: str
    sums: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.sums[name]
        except KeyError:
            raise AttributeError(name) from None


def window_groups(window: Window) -> list[Group]:
    """The window's usage, summed by feature, model and routing tier."""
    rows = window_sums_by_feature_model_tier(
        start=window.start, end=window.end, tenant=window.tenant, feature=window.feature,
        counts=_COUNTS, moneys=_MONEYS, slices=dict(window.slices),
    )  # fmt: skip
    groups = []
    for row in rows:
        values = {name: row[name] or 0 for name in _COUNTS}
        values |= {name: row[name] if row[name] is not None else Decimal(0) for name in _MONEYS}
        groups.append(Group(row["feature"], row["model"], row["routing_tier"], values))
    return groups


# --- Thresholds ---------------------------------------------------------------------

# name -> (threshold, warn when the value is "below" or "above" it). Money metrics have a
# relative threshold: a warning when they rose by more than this factor on the previous
# window of the same length.
DEFAULT_THRESHOLDS: dict[str, tuple[Decimal, str]] = {
    "retrieval_hit_rate": (Decimal("0.55"), "below"),
    "reranker_utilization": (Decimal("0.20"), "below"),
    "routing_cheap_share": (Decimal("0.20"), "below"),
    "token_amplification": (Decimal("0.8"), "above"),
    "cache_dedup_opportunity": (Decimal("0.10"), "above"),
    "cost_per_session": (Decimal("1.25"), "above_previous"),
    "cost_per_correct_output": (Decimal("1.25"), "above_previous"),
    "feature_cost_concentration": (Decimal("0.55"), "above"),
}
# Task types whose output should stay short of their input.
AMPLIFICATION_TASKS = ("extraction", "classification")


def thresholds() -> dict[str, tuple[Decimal, str]]:
    overrides = getattr(settings, "FINOPS_METRIC_THRESHOLDS", {}) or {}
    return {
        name: (Decimal(str(overrides.get(name, value))), direction)
        for name, (value, direction) in DEFAULT_THRESHOLDS.items()
    }


def cheap_tiers() -> set[str]:
    return {t.lower() for t in settings.FINOPS_CHEAP_ROUTING_TIERS}


# --- The metrics --------------------------------------------------------------------


def _ratio(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_RATIO, rounding=ROUND_HALF_UP)


def _money_per(amount: Decimal, count: int) -> Decimal | None:
    if not count:
        return None
    return (amount / count).quantize(_MICROS, rounding=ROUND_HALF_UP)


def _status(value: Decimal | None, threshold: Decimal | None, direction: str) -> str:
    if value is None:
        return NO_DATA
    if threshold is None:
        return HEALTHY
    past = value < threshold if direction == "below" else value > threshold
    return WARNING if past else HEALTHY


def _percent(value: Decimal) -> str:
    return f"{value * 100:.0f}%"


@dataclass(slots=True)
class Metric:
    name: str
    label: str
    value: Decimal | None
    threshold: Decimal | None
    warn_when: str  # below | above
    unit: str  # ratio | money
    status: str = NO_DATA
    previous: Decimal | None = None
    breakdown: list[dict[str, Any]] | None = None
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "value": _text(self.value),
            "status": self.status,
            "threshold": _text(self.threshold),
            "warn_when": self.warn_when,
            "unit": self.unit,
            "message": self.message,
        }
        if self.unit == "money":
            data["previous"] = _text(self.previous)
        if self.breakdown is not None:
            data["breakdown"] = [
                {k: _text(v) if isinstance(v, Decimal) else v for k, v in item.items()}
                for item in self.breakdown
            ]
        return data


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _total(groups: Iterable[Group], name: str) -> Any:
    return sum((getattr(g, name) for g in groups), Decimal(0) if name in _MONEYS else 0)


def _by(groups: list[Group], key: str) -> dict[str, list[Group]]:
    out: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        out[getattr(g, key)].append(g)
    return out


def _ratio_metric(
    name: str, label: str, groups: list[Group], part: str, whole: str, limits: dict
) -> Metric:
    threshold, direction = limits[name]
    value = _ratio(_total(groups, part), _total(groups, whole))
    metric = Metric(name, label, value, threshold, direction, "ratio")
    metric.status = _status(value, threshold, direction)
    metric.breakdown = [
        {"feature": feature or None, "value": _ratio(_total(gs, part), _total(gs, whole))}
        for feature, gs in sorted(_by(groups, "feature").items())
        if _total(gs, whole)
    ]
    return metric


def _routing(groups: list[Group], limits: dict) -> Metric:
    threshold, direction = limits["routing_cheap_share"]
    routed = [g for g in groups if g.routing_tier]
    calls, cost = _total(routed, "calls"), _total(routed, "cost")
    cheap = cheap_tiers()
    value = _ratio(sum(g.calls for g in routed if g.routing_tier.lower() in cheap), calls)
    metric = Metric("routing_cheap_share", "Model routing: share of calls on a cheap tier",
                    value, threshold, direction, "ratio")  # fmt: skip
    metric.status = _status(value, threshold, direction)
    mix: dict[tuple[str, str], list[Group]] = defaultdict(list)
    for g in routed:
        mix[(g.routing_tier, g.model)].append(g)
    metric.breakdown = [
        {"routing_tier": tier, "model": model, "calls": _total(gs, "calls"),
         "call_share": _ratio(_total(gs, "calls"), calls),
         "cost": _total(gs, "cost").quantize(_MICROS, rounding=ROUND_HALF_UP),
         "cost_share": _ratio(_total(gs, "cost"), cost)}
        for (tier, model), gs in sorted(mix.items())
    ]  # fmt: skip
    return metric


def _amplification(groups: list[Group], limits: dict) -> Metric:
    threshold, direction = limits["token_amplification"]
    task_of = dict(
        Feature.objects.filter(key__in={g.feature for g in groups if g.feature}).values_list(
            "key", "task_type"
        )
    )
    by_task: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_task[task_of.get(g.feature) or "unspecified"].append(g)
    value = _ratio(_total(groups, "output_tokens"), _total(groups, "input_tokens"))
    metric = Metric("token_amplification", "Token amplification (output / input)", value,
                    threshold, direction, "ratio")  # fmt: skip
    metric.breakdown = []
    warned = []
    for task, gs in sorted(by_task.items()):
        ratio = _ratio(_total(gs, "output_tokens"), _total(gs, "input_tokens"))
        if ratio is None:
            continue
        limited = task in AMPLIFICATION_TASKS
        status = _status(ratio, threshold if limited else None, direction)
        if status == WARNING:
            warned.append((task, ratio))
        metric.breakdown.append({"task_type": task, "value": ratio, "status": status,
                                 "threshold": threshold if limited else None})  # fmt: skip
    # The threshold applies to the task types that should condense their input.
    metric.status = NO_DATA if value is None else (WARNING if warned else HEALTHY)
    if warned:
        metric.message = "; ".join(
            f"{task} calls write {ratio} output tokens per input token (warning above {threshold})"
            for task, ratio in warned
        )
    return metric


def _concentration(groups: list[Group], limits: dict, whole: Decimal | None = None) -> Metric:
    """The top feature's share of the cost; with a feature filter (`whole`: the cost of
    every feature over the same window and tenants), the feature's share of that."""
    threshold, direction = limits["feature_cost_concentration"]
    total = _total(groups, "cost") if whole is None else whole
    shares = sorted(
        ((feature, _total(gs, "cost")) for feature, gs in _by(groups, "feature").items()),
        key=lambda item: (-item[1], item[0]),
    )
    value = _ratio(shares[0][1], total) if shares and total else None
    label = ("Feature cost concentration (top feature's share of cost)" if whole is None
             else "Feature cost concentration (this feature's share of all cost)")  # fmt: skip
    metric = Metric("feature_cost_concentration", label, value, threshold, direction, "ratio")
    metric.status = _status(value, threshold, direction)
    metric.breakdown = [
        {"feature": feature or None, "cost": cost.quantize(_MICROS, rounding=ROUND_HALF_UP),
         "share": _ratio(cost, total)}
        for feature, cost in shares
    ]  # fmt: skip
    if shares and value is not None:
        metric.message = f"{shares[0][0] or '(no feature)'} takes {_percent(value)} of the cost"
    return metric


def _per(
    name: str, label: str, groups: list[Group], before: list[Group], money: str, count: str,
    limits: dict,
) -> Metric:  # fmt: skip
    factor, _ = limits[name]
    value = _money_per(_total(groups, money), _total(groups, count))
    previous = _money_per(_total(before, money), _total(before, count))
    threshold = (previous * factor).quantize(_MICROS) if previous is not None else None
    metric = Metric(name, label, value, threshold, "above", "money", previous=previous)
    metric.status = _status(value, threshold, "above")
    return metric


def _messages(metrics: list[Metric]) -> None:
    for m in metrics:
        if m.message or m.value is None:
            continue
        shown = _percent(m.value) if m.unit == "ratio" else f"{m.value:.4f}"
        limit = ""
        if m.threshold is not None:
            bound = _percent(m.threshold) if m.unit == "ratio" else f"{m.threshold:.4f}"
            limit = f" (warning {m.warn_when} {bound})"
        m.message = f"{m.label}: {shown}{limit}"


def metrics_compute(window: Window) -> list[Metric]:
    """Every predictive metric over `window`, from the rollups."""
    limits = thresholds()
    if window.feature is None:
        groups, whole = window_groups(window), None
    else:  # one read of every feature: the concentration compares the feature with all
        everything = window_groups(replace(window, feature=None))
        groups = [g for g in everything if g.feature == window.feature]
        whole = _total(everything, "cost")
    before = window_groups(window.previous())
    metrics = [
        _ratio_metric("retrieval_hit_rate", "Retrieval hit rate (chunks used / retrieved)",
                      groups, "chunks_used", "chunks_retrieved", limits),
        _ratio_metric("reranker_utilization", "Reranker utilization (share of reranked calls "
                      "whose order changed)", groups, "reranker_changed", "reranked_calls",
                      limits),
        _routing(groups, limits),
        _amplification(groups, limits),
        _ratio_metric("cache_dedup_opportunity", "Cache and dedup opportunity (calls whose "
                      "prompt hash repeats within the day)", groups, "repeat_calls",
                      "hashed_calls", limits),
        _per("cost_per_session", "Cost per session", groups, before, "session_cost",
             "sessions", limits),
        _per("cost_per_correct_output", "Cost per correct output", groups, before,
             "outcome_cost", "correct_calls", limits),
        _concentration(groups, limits, whole),
    ]  # fmt: skip
    _messages(metrics)
    return metrics
