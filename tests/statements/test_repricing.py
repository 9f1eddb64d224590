"""Re-pricing after a price correction: open months move, final statements never do."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import UsageRollup
from billing.rollups import rollups_update
from finops.fields import ExactSum
from finops.models import BEGINNING_OF_TIME, ModelPrice
from ingestion.models import CostChange, UsageEvent
from statements.models import Statement
from statements.services import (
    reprice_open_periods,
    statement_verify,
    statements_draft,
    statements_finalize,
)
from tests.factories import ModelPriceFactory
from tests.statements.test_statements import CLOSING, LAST_MONTH, THIS_MONTH, post

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MODEL = "acme-llm-1"


@pytest.fixture
def priced(operator, acme) -> ModelPrice:
    price = ModelPriceFactory(model=MODEL, provider="", input_per_million=Decimal("3"),
                              output_per_million=Decimal("15"),
                              effective_from=BEGINNING_OF_TIME)  # fmt: skip
    post(operator, 2, prefix="old", model=MODEL)  # last month
    post(operator, 3, prefix="new", model=MODEL, at=CLOSING)  # this month
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    return price


def test_a_correction_moves_open_months_only(priced, acme) -> None:
    final = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    final_hash, final_total = final.content_hash, final.total_exact
    old_costs = dict(
        UsageEvent.objects.filter(event_id__startswith="old").values_list("id", "cost")
    )
    # The price was wrong since the start of last month: the correction starts there.
    ModelPriceFactory(model=MODEL, provider="", input_per_million=Decimal("2"),
                      output_per_million=Decimal("10"),
                      effective_from=LAST_MONTH - timedelta(days=1))  # fmt: skip
    result = reprice_open_periods(models={MODEL}, now=CLOSING + timedelta(hours=1))
    # Three events of this month: 1000 x 2 + 200 x 2 + 300 x 10 per 1M = 0.0054 each.
    assert result.events == 3
    assert result.after == Decimal("0.0162") and result.before == Decimal("0.0243")
    assert result.delta == Decimal("-0.0081")
    new = UsageEvent.objects.filter(event_id__startswith="new")
    assert {e.cost for e in new} == {Decimal("0.0054")}
    assert CostChange.objects.filter(reason="repriced").count() == 3
    # Last month: events and final statement untouched.
    assert dict(UsageEvent.objects.filter(event_id__startswith="old")
                .values_list("id", "cost")) == old_costs  # fmt: skip
    final.refresh_from_db()
    assert (final.content_hash, final.total_exact) == (final_hash, final_total)
    assert statement_verify(final)
    # The rollups follow the ledger, and the open draft bills the corrected price.
    rollups_update()
    folded = UsageRollup.objects.filter(grain="hour").aggregate(s=ExactSum("cost"))["s"]
    assert folded == UsageEvent.objects.aggregate(s=ExactSum("cost"))["s"]
    statements_draft(now=CLOSING + timedelta(hours=2))
    draft = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    assert draft.total_exact == Decimal("0.0162")
    assert not draft.lines.filter(kind="adjustment").exists()
    # Running it again moves nothing.
    assert reprice_open_periods(models={MODEL}, now=CLOSING).events == 0


def test_staff_reprice_from_the_price_table(priced) -> None:
    ModelPriceFactory(model=MODEL, provider="", input_per_million=Decimal("2"),
                      output_per_million=Decimal("10"),
                      effective_from=LAST_MONTH - timedelta(days=1))  # fmt: skip
    staff = get_user_model().objects.create_superuser("staff", "s@example.com", "pw")
    client = Client()
    client.force_login(staff)
    ids = list(ModelPrice.objects.filter(model=MODEL).values_list("id", flat=True))
    response = client.post("/admin/finops/modelprice/", {
        "action": "reprice_open_periods_action", "_selected_action": ids}, follow=True)  # fmt: skip
    text = response.content.decode()
    assert "Re-priced 3 event(s) of 1 model(s)" in text
    assert "Final statements are unchanged" in text
