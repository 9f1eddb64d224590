"""What the portal shows a tenant user: its own tenant's figures only."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from billing.guard.ledger import ledger_spend
from billing.guard.scopes import calendar_scope
from billing.selectors import daily_feature_costs
from finops.charts import Chart, daily_stacked_chart
from finops.models import Tenant
from finops.periods import DAY, MONTH, period_end, period_start

CHART_DAYS = 30


def month_to_date(tenant: Tenant, now: datetime) -> Decimal:
    """Exact and current: the rollups plus what arrived since."""
    start = period_start(MONTH, now)
    scope = calendar_scope(period=MONTH, start=start, end=period_end(MONTH, start),
                                    tenant_id=tenant.id)  # fmt: skip
    return ledger_spend(scope)[0]


def daily_cost_chart(tenant: Tenant, now: datetime, currency: str) -> Chart:
    """Daily cost by feature over the last 30 days, as stacked bars (from the rollups)."""
    last = period_start(DAY, now)
    first = last - timedelta(days=CHART_DAYS - 1)
    amounts = daily_feature_costs(first=first, last=last, tenant=tenant)
    days = [(first + timedelta(days=i)).date() for i in range(CHART_DAYS)]
    return daily_stacked_chart(days=days, amounts=amounts, unit=currency)
