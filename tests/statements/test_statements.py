"""Statements: drafted from the ledger, finalized once, late usage as adjustments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from finops.fields import ExactSum
from finops.models import Tenant
from finops.money import round_money
from finops.periods import MONTH, period_end, period_start
from ingestion.models import UsageEvent
from ingestion.services import events_price_unpriced
from statements.models import Statement, StatementLine
from statements.services import (
    statement_finalize,
    statement_verify,
    statements_draft,
    statements_finalize,
)
from tests.conftest import event, post_events, run_at_once
from tests.factories import ModelPriceFactory, TenantFactory

NOW = datetime.now(UTC)
THIS_MONTH = period_start(MONTH, NOW)
LAST_MONTH = period_start(MONTH, THIS_MONTH - timedelta(days=1))
# Inside last month, and inside the backfill window whatever today's date.
IN_LAST_MONTH = THIS_MONTH - timedelta(hours=6)
# Three days after this month began: last month is due for finalization.
CLOSING = THIS_MONTH + timedelta(days=3)


def post(client, count: int, *, tenant: str = "acme", prefix: str, at: datetime = IN_LAST_MONTH,
         **fields) -> None:  # fmt: skip
    events = [event(event_id=f"{prefix}-{i}", tenant=tenant, timestamp=at.isoformat(), **fields)
              for i in range(count)]  # fmt: skip
    response = post_events(client, {"events": events})
    assert response.status_code == 202, response.content


def ledger(tenant: Tenant, start: datetime) -> Decimal:
    events = UsageEvent.objects.filter(
        tenant=tenant, timestamp__gte=start, timestamp__lt=period_end(MONTH, start)
    )
    return events.aggregate(s=ExactSum("cost"))["s"] or Decimal(0)


def last_month_statement(tenant: Tenant) -> Statement:
    return Statement.objects.get(tenant=tenant, period=LAST_MONTH.date())


@pytest.mark.django_db
def test_a_draft_bills_each_token_kind_at_its_unit_price(operator, acme) -> None:
    # 1200 input of which 200 cached, 300 output, gpt-4o-2024-08-06: 2.50 / 1.25 / 10 per 1M.
    post(operator, 3, prefix="a")
    post(operator, 1, prefix="r", model="o1-2024-12-17", reasoning_tokens=100,
         cached_input_tokens=0)  # fmt: skip
    statements_draft(now=CLOSING - timedelta(days=1))
    statement = last_month_statement(acme)
    assert statement.number == f"ACME-{LAST_MONTH:%Y-%m}"
    lines = {(ln.model, ln.token_kind): ln for ln in statement.lines.all()}
    gpt_input = lines[("gpt-4o-2024-08-06", "input")]
    assert (gpt_input.quantity, gpt_input.unit_price) == (3000, Decimal("2.5"))
    assert gpt_input.amount_exact == Decimal("0.0075")
    assert gpt_input.amount == Decimal("0.01")  # rounded once, half-up
    assert lines[("gpt-4o-2024-08-06", "cached_input")].quantity == 600
    assert lines[("gpt-4o-2024-08-06", "output")].amount_exact == Decimal("0.009")
    assert lines[("o1-2024-12-17", "reasoning")].quantity == 100
    assert lines[("o1-2024-12-17", "output")].quantity == 200
    # Exact lines add up to the ledger; the total is the sum of the rounded lines.
    assert statement.total_exact == ledger(acme, LAST_MONTH)
    assert statement.total == sum(ln.amount for ln in statement.lines.all())
    assert statement.subtotal == statement.total  # no markup, no adjustments
    assert statement.status == "draft" and statement.content_hash == ""


@pytest.mark.django_db
def test_markup_is_its_own_line(operator) -> None:
    tenant = TenantFactory(slug="marked", markup_percent=Decimal("12.5"))
    post(operator, 10, tenant="marked", prefix="a")
    statements_draft(now=CLOSING - timedelta(days=1))
    statement = last_month_statement(tenant)
    markup = statement.lines.get(kind="markup")
    assert markup.description == "Chargeback markup 12.5%"
    assert markup.amount_exact == ledger(tenant, LAST_MONTH) * Decimal("0.125")
    assert statement.markup == markup.amount
    assert statement.total == statement.subtotal + statement.markup


@pytest.mark.django_db
def test_an_active_tenant_without_usage_gets_a_zero_statement(db) -> None:
    tenant = TenantFactory(slug="quiet", signup_at=LAST_MONTH)
    TenantFactory(slug="closed", signup_at=LAST_MONTH, status=Tenant.Status.CLOSED)
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = last_month_statement(tenant)
    assert (statement.status, statement.total, statement.lines.count()) == ("finalized", 0, 0)
    assert not Statement.objects.filter(tenant__slug="closed").exists()


@pytest.mark.django_db
def test_run_jobs_finalizes_last_month_after_the_grace_period(operator, acme) -> None:
    post(operator, 2, prefix="a")
    call_command("run_jobs", "--now", (CLOSING - timedelta(seconds=1)).isoformat())
    assert last_month_statement(acme).status == "draft"
    call_command("run_jobs", "--now", CLOSING.isoformat())
    statement = last_month_statement(acme)
    assert statement.status == "finalized"
    assert statement.finalized_at == CLOSING
    assert len(statement.content_hash) == 64 and statement_verify(statement)
    # This month's statement exists and stays open.
    assert Statement.objects.get(tenant=acme, period=THIS_MONTH.date()).status == "draft"


@pytest.mark.django_db
def test_a_final_statement_never_changes_and_its_hash_shows_tampering(operator, acme) -> None:
    post(operator, 2, prefix="a")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = last_month_statement(acme)
    before = (statement.content_hash, list(statement.lines.values_list("amount_exact", flat=True)))
    post(operator, 5, prefix="late")
    statements_draft(now=CLOSING + timedelta(hours=1))
    statements_finalize(now=CLOSING + timedelta(hours=1))
    statement.refresh_from_db()
    after = (statement.content_hash, list(statement.lines.values_list("amount_exact", flat=True)))
    assert after == before and statement_verify(statement)
    StatementLine.objects.filter(statement=statement, position=1).update(amount="999")
    assert not statement_verify(statement)


@pytest.mark.django_db
def test_late_usage_lands_once_as_an_adjustment_on_the_next_statement(operator, acme) -> None:
    post(operator, 2, prefix="a")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    post(operator, 3, prefix="late")  # last month's events, after it was finalized
    post(operator, 1, prefix="now", at=CLOSING)  # this month's
    later = CLOSING + timedelta(hours=1)
    statements_draft(now=later)
    statements_draft(now=later)  # a re-run changes nothing
    current = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    adjustments = list(current.lines.filter(kind="adjustment"))
    assert {ln.period for ln in adjustments} == {LAST_MONTH.date()}
    assert all(ln.description.startswith(f"Adjustment for {LAST_MONTH:%Y-%m}:")
               for ln in adjustments)  # fmt: skip
    assert sum(ln.quantity for ln in adjustments if ln.token_kind == "input") == 3000
    final = last_month_statement(acme)
    billed = final.total_exact + sum(ln.amount_exact for ln in adjustments)
    assert billed == ledger(acme, LAST_MONTH)  # every cent once
    # Once this month is final too, nothing of last month is billed again.
    next_closing = period_end(MONTH, THIS_MONTH) + timedelta(days=3)
    statements_finalize(now=next_closing)
    statements_draft(now=next_closing)
    nxt = Statement.objects.get(tenant=acme, period=period_end(MONTH, THIS_MONTH).date())
    assert not nxt.lines.filter(kind="adjustment").exists()


@pytest.mark.django_db
def test_an_event_priced_after_finalization_is_adjusted(operator, acme) -> None:
    post(operator, 2, prefix="u", model="brand-new-model")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    final = last_month_statement(acme)
    assert final.total == 0
    assert final.lines.filter(price__isnull=True).count() == 3  # input, cached, output
    ModelPriceFactory(model="brand-new-model", provider="", input_per_million=Decimal("3"),
                      output_per_million=Decimal("15"))  # fmt: skip
    events_price_unpriced()
    statements_draft(now=CLOSING + timedelta(hours=1))
    current = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    adjustments = current.lines.filter(kind="adjustment")
    # The unpriced quantities come off, the priced ones go on: net tokens zero, cost added.
    assert sum(ln.quantity for ln in adjustments) == 0
    assert sum(ln.amount_exact for ln in adjustments) == ledger(acme, LAST_MONTH)
    assert ledger(acme, LAST_MONTH) == Decimal("0.0162")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
def test_finalization_run_twice_at_once_gives_one_statement_and_one_hash(operator, acme) -> None:
    post(operator, 4, prefix="a")
    statements_draft(now=CLOSING)
    results = run_at_once(4, lambda i: statements_finalize(now=CLOSING).finalized)
    assert sorted(results) == [0, 0, 0, 1]
    statement = last_month_statement(acme)
    assert Statement.objects.filter(tenant=acme, period=LAST_MONTH.date()).count() == 1
    first_hash = statement.content_hash
    assert statement_finalize(statement=statement, now=CLOSING + timedelta(days=1)) is False
    statement.refresh_from_db()
    assert statement.content_hash == first_hash and statement_verify(statement)


@pytest.mark.django_db
def test_many_sub_cent_lines_still_add_up_to_the_exact_total_to_the_cent(operator, acme) -> None:
    # Each call's lines are worth fractions of a cent: rounded one by one they would
    # all round down (or up) together.
    for model in ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-3-5-sonnet-20241022",
                  "claude-3-5-haiku-20241022"):  # fmt: skip
        post(operator, 1, prefix=model, model=model, input_tokens=700, cached_input_tokens=300,
             output_tokens=150)  # fmt: skip
    statements_draft(now=CLOSING)
    statement = last_month_statement(acme)
    rounding = statement.lines.filter(token_kind="", kind="usage")
    exact = ledger(acme, LAST_MONTH)
    assert statement.subtotal == round_money(exact, "USD")
    assert statement.subtotal == sum(ln.amount for ln in statement.lines.filter(kind="usage"))
    assert rounding.count() == 1 and rounding.get().amount_exact == 0
    assert rounding.get().amount != 0
