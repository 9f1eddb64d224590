"""The quarterly FinOps report: the playbook's quarterly KPIs in one place.

Total spend (against the previous quarter), cost per feature and per user, the cache hit
rates, what routing, batch and off-peak saved (`console.savings`), the features retired
and the monthly spend their retirement removed, margin by tier (`console.economics`),
the optimization log with each decision's realized saving, the projection's accuracy,
and the recommendations ranked by measured saving. Read from the rollups and the
console's own tables: a quarter costs a few thousand rollup rows whatever its events.

A quarter in progress is reported up to today's UTC midnight (its whole days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billing.selectors import feature_costs
from finops.charts import BarChart, colors_for, horizontal_bars
from finops.money import money_format
from finops.periods import DAY, period_start

from .decisions import decision_results
from .economics import feature_reach_report, unit_economics
from .models import FeatureReach, OptimizationDecision, RetirementReview
from .projection import projection_accuracy
from .savings import Savings, savings_compute

QUARTER_PATTERN = re.compile(r"^(\d{4})-Q([1-4])$")
# Quarters whose neighbours (the previous one, the next) are dates too.
FIRST_YEAR, LAST_YEAR = 1971, 9998
_MICROS = Decimal("0.000001")
_RATIO = Decimal("0.0001")
DAYS_PER_MONTH = Decimal(30)


def _micros(value: Decimal) -> Decimal:
    return value.quantize(_MICROS, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        match = QUARTER_PATTERN.match(text.strip())
        if not match:
            raise ValueError("A quarter is written YYYY-Qn, e.g. 2026-Q4.")
        if not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
            raise ValueError(f"A quarter of the years {FIRST_YEAR} to {LAST_YEAR}.")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, at: datetime) -> Quarter:
        return cls(at.year, (at.month - 1) // 3 + 1)

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.number}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Quarter:
        return Quarter(self.year + self.number // 4, self.number % 4 + 1)

    def previous(self) -> Quarter:
        return Quarter(self.year - (self.number == 1), (self.number - 2) % 4 + 1)


@dataclass(slots=True)
class QuarterlyReport:
    quarter: Quarter
    start: datetime
    end: datetime  # the end of the days reported (today's midnight in a quarter in progress)
    total: Decimal
    previous_total: Decimal
    features: list[dict[str, Any]]
    users: int | None
    savings: Savings
    retired: list[dict[str, Any]]
    economics: Any
    reach: Any
    decisions: list[Any]
    accuracy: list[Any]
    notes: list[str] = field(default_factory=list)

    @property
    def change(self) -> Decimal | None:
        if not self.previous_total:
            return None
        return ((self.total - self.previous_total) / self.previous_total).quantize(_RATIO)

    @property
    def cost_per_user(self) -> Decimal | None:
        return _micros(self.total / self.users) if self.users else None

    @property
    def retirement_monthly_saving(self) -> Decimal:
        return sum((r["monthly_spend_removed"] for r in self.retired), Decimal(0))

    def kpis(self) -> dict[str, Any]:
        savings = self.savings
        return {
            "total_spend": _micros(self.total),
            "previous_quarter_spend": _micros(self.previous_total),
            "change": self.change,
            "cost_per_user": self.cost_per_user,
            "users": self.users,
            "provider_cache_hit_rate": savings.lever("provider_cache").figures["hit_rate"],
            "app_cache_hit_rate": savings.lever("app_cache").figures["hit_rate"],
            "routing_saved": _micros(savings.lever("routing").saved),
            "batch_saved": _micros(savings.lever("batch").saved),
            "off_peak_saved": _micros(savings.lever("off_peak").saved),
            "retired_features": len(self.retired),
            "retirement_monthly_saving": _micros(self.retirement_monthly_saving),
        }

    def as_json(self) -> dict[str, Any]:
        return _text(
            {
                "quarter": self.quarter.label,
                "from": self.start.isoformat(),
                "to": self.end.isoformat(),
                "kpis": self.kpis(),
                "features": self.features,
                "savings": self.savings.as_json(),
                "retired_features": self.retired,
                "economics": self.economics.as_json(),
                "feature_reach": self.reach.as_json(),
                "optimization_log": [decision_json(d) for d in self.decisions],
                "projection_accuracy": [a.as_json() for a in self.accuracy],
                "recommendations": [r.as_json() for r in self.savings.recommendations],
                "notes": self.notes,
            }
        )


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _text(v) for k, v in value.items()}
    return value


def decision_json(result: Any) -> dict[str, Any]:
    decision = result.decision
    return {"id": decision.id, "lever": decision.lever, "feature": decision.feature.key,
            "decided_on": decision.decided_on.isoformat(), "note": decision.note,
            **result.as_json()}  # fmt: skip


def _features(start: datetime, costs: dict[str, Decimal]) -> list[dict[str, Any]]:
    """Cost per feature, its share, and its cost per user where the reach job counted
    the quarter's users."""
    total = sum(costs.values(), Decimal(0))
    users = dict(
        FeatureReach.objects.filter(
            period=FeatureReach.Period.QUARTER, period_start=start.date()
        ).values_list("feature", "users")
    )
    rows = []
    for feature, cost in sorted(costs.items(), key=lambda i: -i[1]):
        count = users.get(feature) if feature else None  # '' is every feature together
        rows.append(
            {
                "feature": feature or None,
                "cost": _micros(cost),
                "share": (cost / total).quantize(_RATIO) if total else None,
                "users": count,
                "cost_per_user": _micros(cost / count) if count else None,
            }
        )
    return rows


def _retired(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Features retired in the quarter, and the monthly spend each took when its review
    opened (the review's cost over its window, per 30 days): what retiring it removed."""
    reviews = RetirementReview.objects.filter(
        kind=RetirementReview.Kind.FEATURE,
        decision=RetirementReview.Decision.RETIRE,
        decided_at__gte=start,
        decided_at__lt=end,
    ).order_by("decided_at")
    return [
        {
            "feature": review.subject,
            "decided_at": review.decided_at,
            "sunset_on": review.sunset_on,
            "monthly_spend_removed": _micros(review.cost * DAYS_PER_MONTH / review.window_days),
        }
        for review in reviews
    ]


def quarterly_report(*, quarter: Quarter, now: datetime) -> QuarterlyReport:
    start = quarter.start
    end = min(quarter.end, period_start(DAY, now))
    end = max(end, start)
    previous = quarter.previous()
    days = (end - start).days
    costs = feature_costs(start=start, end=end)
    total = sum(costs.values(), Decimal(0))
    # The previous quarter over as many days, so a quarter in progress compares fairly.
    previous_end = min(previous.end, previous.start + (end - start))
    previous_total = sum(feature_costs(start=previous.start, end=previous_end).values(), Decimal(0))
    reach = FeatureReach.objects.filter(
        period=FeatureReach.Period.QUARTER, period_start=start.date(), feature=""
    ).first()
    report = QuarterlyReport(
        quarter=quarter,
        start=start,
        end=end,
        total=total,
        previous_total=previous_total,
        features=_features(start, costs),
        users=reach.users if reach else None,
        savings=savings_compute(start=start, end=end),
        retired=_retired(start, quarter.end),
        economics=unit_economics(start, end),
        reach=feature_reach_report(period=FeatureReach.Period.QUARTER, period_start=start.date()),
        decisions=decision_results(
            OptimizationDecision.objects.filter(decided_on__lt=quarter.end.date())
            .filter(decided_on__gte=previous.start.date())
            .select_related("feature"),
            now=now,
        ),
        accuracy=[a for a in projection_accuracy(now=now) if start.date() <= a.month < end.date()],
    )
    if not days:
        report.notes.append("The quarter has no complete day yet.")
    if reach is None:
        report.notes.append("Users are counted by the daily feature-reach job: not yet run.")
    return report


# --- The admin page's charts --------------------------------------------------------

SAVED, POTENTIAL = "saved in the quarter", "more per month, if taken"
SHORT_LABELS = {"routing": "Model routing", "provider_cache": "Provider prompt cache",
                "app_cache": "Application cache", "semantic_cache": "Semantic cache",
                "batch": "Batch API", "off_peak": "Off-peak hours",
                "provisioned": "Provisioned throughput", "region": "Region"}  # fmt: skip


def _money(value: Decimal) -> str:
    return money_format(value, "USD") or "-"


@dataclass(frozen=True, slots=True)
class QuarterlyCharts:
    features: BarChart
    levers: BarChart


def quarterly_charts(report: QuarterlyReport) -> QuarterlyCharts:
    features = [(f["feature"] or "(no feature)", f["cost"]) for f in report.features[:12]]
    feature_colors = colors_for([name for name, _ in features])
    feature_chart = horizontal_bars(
        rows=[
            (name, [(name, cost, f"{name}: {_money(cost)}")], _money(cost))
            for name, cost in features
        ],
        colors=feature_colors,
    )
    levers = [lever for lever in report.savings.levers if lever.saved or lever.potential_monthly]
    rows = []
    for lever in levers:
        value = _money(lever.saved)
        if lever.potential_monthly:
            value += f", +{_money(lever.potential_monthly)}/month"
        segments = [
            (SAVED, max(lever.saved, Decimal(0)), f"saved {_money(lever.saved)}"),
            (POTENTIAL, lever.potential_monthly,
             f"{_money(lever.potential_monthly)} a month more"),
        ]  # fmt: skip
        rows.append((SHORT_LABELS.get(lever.lever, lever.label), segments, value))
    lever_chart = horizontal_bars(rows=rows, colors=colors_for([SAVED, POTENTIAL]))
    return QuarterlyCharts(feature_chart, lever_chart)
