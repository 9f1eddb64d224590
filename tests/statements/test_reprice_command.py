"""`reprice_open_months`: an upgrade or a price import reaches the open months only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from finops.models import BEGINNING_OF_TIME, ModelPrice, PriceRate
from ingestion.models import CostChange, UsageEvent
from statements.models import Statement
from statements.services import statement_verify, statements_draft, statements_finalize
from tests.statements.test_statements import CLOSING, LAST_MONTH, THIS_MONTH, post

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

MODEL = "acme-batch-llm"


def test_the_command_reprices_batch_calls_of_open_months_under_a_new_row(operator, acme) -> None:
    # A row from before batch rates existed for it: batch calls billed at full price.
    ModelPrice.objects.create(model=MODEL, provider="together_ai", input_per_million=4,
                              output_per_million=8, effective_from=BEGINNING_OF_TIME)  # fmt: skip
    fields = {"model": MODEL, "service_tier": "batch", "cached_input_tokens": 0}
    post(operator, 1, prefix="old", **fields)  # last month, finalized below
    post(operator, 2, prefix="new", at=CLOSING, **fields)  # this month, open
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    final = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    final_hash = final.content_hash
    # 1200 input x 4 + 300 output x 8 per 1M, full price
    assert set(UsageEvent.objects.values_list("cost", flat=True)) == {Decimal("0.0072")}

    # The corrected row, with the vendor's batch rates, from the start of last month.
    corrected = ModelPrice.objects.create(model=MODEL, provider="together_ai",
                                          input_per_million=4, output_per_million=8,
                                          effective_from=LAST_MONTH)  # fmt: skip
    PriceRate.objects.create(price=corrected, service_tier="batch", token_kind="input",
                             per_million=2)  # fmt: skip
    PriceRate.objects.create(price=corrected, service_tier="batch", token_kind="output",
                             per_million=4)  # fmt: skip
    out = StringIO()
    call_command("reprice_open_months", stdout=out)

    # This month's two calls: 1200 x 2 + 300 x 4 per 1M = 0.0036 each.
    new = UsageEvent.objects.filter(event_id__startswith="new")
    assert {(e.cost, e.price_id) for e in new} == {(Decimal("0.0036"), corrected.id)}
    assert "2 event(s) re-priced, cost 0.0144 -> 0.0072 (difference -0.0072)" in out.getvalue()
    assert CostChange.objects.filter(reason="repriced").count() == 2
    # The finalized month is untouched.
    assert UsageEvent.objects.get(event_id="old-0").cost == Decimal("0.0072")
    final.refresh_from_db()
    assert final.content_hash == final_hash and statement_verify(final)
    statements_draft(now=CLOSING + timedelta(hours=1))
    draft = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    assert draft.total_exact == Decimal("0.0072")
    # Nothing moves a second time.
    out = StringIO()
    call_command("reprice_open_months", "--model", MODEL, stdout=out)
    assert "0 event(s) re-priced" in out.getvalue()


def test_a_change_of_the_vendor_rules_never_reaches_a_final_month(
    operator, acme, monkeypatch
) -> None:
    """The review's case: statements bill quantity x the row's unit price; a row's rules
    are frozen with it, so a new rule moves no final month and no open draft until a new
    row is imported and the open months re-priced."""
    from finops.pricing import rules
    from finops.pricing.rules import VendorRule

    price = ModelPrice.objects.create(model=MODEL, provider="together_ai", input_per_million=4,
                                      output_per_million=8)  # fmt: skip
    fields = {"model": MODEL, "service_tier": "batch", "cached_input_tokens": 0}
    post(operator, 1, prefix="old", **fields)
    post(operator, 1, prefix="new", at=CLOSING, **fields)
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)

    added = VendorRule(
        name="together batch",
        source="test",
        providers=frozenset({"together_ai"}),
        tiers={"batch": Decimal("0.5")},
    )
    monkeypatch.setattr(rules, "VENDOR_RULES", (*rules.VENDOR_RULES, added))  # fmt: skip
    rules.rules_for.cache_clear()
    try:
        statements_draft(now=CLOSING + timedelta(hours=1))
        draft = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
        assert not draft.lines.filter(kind="adjustment").exists()
        assert draft.total_exact == Decimal("0.0072")  # still the row's full batch price
        assert price.rules == {"tiers": {}, "kinds": {}, "inclusive_threshold": False}
    finally:
        rules.rules_for.cache_clear()


def test_a_unit_price_finer_than_the_rates_is_stored_exactly_and_the_hash_verifies(
    operator, acme
) -> None:
    # 0.123456789012345679 per 1M (18 places, as the finest map prices), half in batch
    # (OpenAI's rule): 0.0617283945061728395, 19 places.
    ModelPrice.objects.create(model="fine-llm", provider="openai", input_per_million=Decimal(
        "0.123456789012345679"), output_per_million=0)  # fmt: skip
    post(operator, 1, prefix="fine", model="fine-llm", service_tier="batch",
         cached_input_tokens=0, output_tokens=0)  # fmt: skip
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    final = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    line = final.lines.get(token_kind="input")
    assert line.unit_price == Decimal("0.0617283945061728395")
    assert statement_verify(final)
