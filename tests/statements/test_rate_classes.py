"""Each class of rate of a price row bills on its own line: service tiers, long prompts,
1-hour cache writes, off-peak hours, queries; in the JSON, the CSV and the FOCUS export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from pypdf import PdfReader

from finops.fields import ExactSum
from finops.models import ModelPrice, PriceRate, Tenant
from finops.money import decimal_string, round_money
from finops.periods import MONTH, period_end
from ingestion.models import UsageEvent
from statements.documents import CSV_COLUMNS
from statements.models import Statement, StatementLine
from statements.services import (
    content_hash,
    rate_label,
    statement_verify,
    statements_draft,
    statements_finalize,
)
from tests.factories import ModelPriceFactory, TenantFactory
from tests.statements.test_statements import CLOSING, LAST_MONTH, THIS_MONTH, post

pytestmark = pytest.mark.django_db

GPT = "gpt-4o-2024-08-06"  # default table: 2.50 / 10 per 1M; batch 1.25 / 5
GEMINI = "gemini-2.5-pro"  # 1.25 / 10 per 1M; prompts above 200k: 2.50 / 15
CLAUDE = "claude-sonnet-4-5"  # 3 / 15 per 1M; cache writes 3.75 (5 min), 6 (1 h)
RERANK = "rerank-test"
NIGHT = "night-owl-test"
NO_CACHE = {"cached_input_tokens": 0}

# (model, rate) -> quantity, unit price per 1M, exact amount, rounded amount: by hand.
EXPECTED = {
    (GPT, "input"): (1_000_000, "2.5", "2.5", "2.50"),
    (GPT, "output"): (100_500, "10", "1.005", "1.01"),  # half a cent: rounds up
    (GPT, "batch input"): (3_000_000, "1.25", "3.75", "3.75"),
    (GPT, "batch output"): (500_000, "5", "2.5", "2.50"),
    (GEMINI, "input"): (100_000, "1.25", "0.125", "0.13"),
    (GEMINI, "output"): (1_000, "10", "0.01", "0.01"),
    (GEMINI, "input, above 200k"): (250_000, "2.5", "0.625", "0.63"),
    (GEMINI, "output, above 200k"): (10_000, "15", "0.15", "0.15"),
    (CLAUDE, "input"): (40_000, "3", "0.12", "0.12"),
    (CLAUDE, "cache write, 5 min"): (20_000, "3.75", "0.075", "0.08"),
    (CLAUDE, "cache write, 1 h"): (40_000, "6", "0.24", "0.24"),
    (CLAUDE, "output"): (2_000, "15", "0.03", "0.03"),
    (RERANK, "queries"): (25, "2000", "0.05", "0.05"),  # per 1M queries: 0.002 a query
    (NIGHT, "input, off-peak"): (500_000, "1", "0.5", "0.50"),
    (NIGHT, "cached input, off-peak"): (500_000, "0.1", "0.05", "0.05"),
    (NIGHT, "output, off-peak"): (10_000, "8", "0.08", "0.08"),
}


@pytest.fixture
def month(operator, acme) -> Statement:
    """Last month of acme: standard and batch calls, a long and a short prompt, 5-minute
    and 1-hour cache writes, a rerank call and an off-peak call."""
    ModelPriceFactory(model=RERANK, mode=ModelPrice.Mode.RERANK, per_query=Decimal("0.002"),
                      input_per_million=0, output_per_million=0)  # fmt: skip
    night = ModelPriceFactory(model=NIGHT, input_per_million=2, output_per_million=8,
                              off_peak_windows=[{"hours_utc": ["00:00-00:00"]}])  # fmt: skip
    PriceRate.objects.create(price=night, service_tier="standard", token_kind="input",
                             off_peak=True, per_million=1)  # fmt: skip
    PriceRate.objects.create(price=night, service_tier="standard", token_kind="cached_input",
                             off_peak=True, per_million=Decimal("0.1"))  # fmt: skip
    post(operator, 1, prefix="std", input_tokens=1_000_000, output_tokens=100_500, **NO_CACHE)
    post(operator, 1, prefix="batch", service_tier="batch", input_tokens=3_000_000,
         output_tokens=500_000, **NO_CACHE)  # fmt: skip
    post(operator, 1, prefix="short", model=GEMINI, input_tokens=100_000, output_tokens=1_000,
         **NO_CACHE)  # fmt: skip
    post(operator, 1, prefix="long", model=GEMINI, input_tokens=250_000, output_tokens=10_000,
         **NO_CACHE)  # fmt: skip
    post(operator, 1, prefix="cache", model=CLAUDE, provider="anthropic", input_tokens=100_000,
         cache_write_tokens=60_000, cache_write_1h_tokens=40_000, output_tokens=2_000,
         **NO_CACHE)  # fmt: skip
    post(operator, 1, prefix="rerank", model=RERANK, input_tokens=0, output_tokens=0,
         queries=25, **NO_CACHE)  # fmt: skip
    post(operator, 1, prefix="night", model=NIGHT, input_tokens=1_000_000,
         cached_input_tokens=500_000, output_tokens=10_000)  # fmt: skip
    statements_draft(now=CLOSING)
    return Statement.objects.get(tenant=acme, period=LAST_MONTH.date())


def usage_lines(statement: Statement) -> dict[tuple[str, str], StatementLine]:
    lines = statement.lines.filter(kind="usage").exclude(token_kind="")
    return {(ln.model, rate_label(ln.token_kind, ln.service_tier, ln.above_tokens,
                                  ln.off_peak)): ln for ln in lines}  # fmt: skip


def price_id(event_id: str) -> int:
    return UsageEvent.objects.get(event_id=event_id).price_id


def test_each_class_of_rate_is_a_line_at_its_own_unit_price(month) -> None:
    lines = usage_lines(month)
    assert set(lines) == set(EXPECTED)
    for key, (quantity, unit, exact, amount) in EXPECTED.items():
        line = lines[key]
        got = (line.quantity, line.unit_price, line.amount_exact, line.amount)
        assert got == (quantity, Decimal(unit), Decimal(exact), Decimal(amount)), key
        assert line.description == f"document_summarization / {key[0]}: {key[1]}"
    batch = lines[(GPT, "batch output")]
    assert (batch.service_tier, batch.batch, batch.above_tokens) == ("batch", True, 0)
    long = lines[(GEMINI, "input, above 200k")]
    assert (long.service_tier, long.above_tokens, long.off_peak) == ("standard", 200_000, False)
    assert long.price_id == lines[(GEMINI, "input")].price_id  # one price row, two rates
    assert lines[(NIGHT, "input, off-peak")].off_peak
    assert lines[(CLAUDE, "cache write, 1 h")].token_kind == "cache_write_1h"
    assert lines[(RERANK, "queries")].token_kind == "query"


def test_the_total_is_the_events_costs_rounded_per_line(month, acme) -> None:
    events = UsageEvent.objects.filter(tenant=acme)
    exact = events.aggregate(s=ExactSum("cost"))["s"]
    assert exact == sum(Decimal(e[2]) for e in EXPECTED.values()) == Decimal("11.81")
    rounded = sum(ln.amount for ln in usage_lines(month).values())
    assert rounded == sum(Decimal(e[3]) for e in EXPECTED.values()) == Decimal("11.83")
    # The lines rounded one by one overshoot the exact total: a rounding line takes it back.
    rounding = month.lines.get(kind="usage", token_kind="")
    assert (rounding.amount, rounding.amount_exact) == (Decimal("-0.02"), 0)
    assert month.total_exact == exact
    assert month.total == round_money(exact, "USD") == rounded + rounding.amount
    assert month.total == sum(ln.amount for ln in month.lines.all())


def test_the_json_line_carries_the_tier_and_a_readable_rate(acme_client, month) -> None:
    body = acme_client.get(f"/api/v1/statements/{month.id}").json()
    lines = {(ln["model"], ln["rate"]): ln for ln in body["lines"] if ln["token_kind"]}
    assert set(lines) == set(EXPECTED)
    batch = lines[(GPT, "batch output")]
    assert {k: batch[k] for k in ("kind", "feature", "model", "token_kind", "quantity",
                                  "unit_price", "amount", "period", "service_tier",
                                  "above_tokens", "off_peak", "batch")} == {
        "kind": "usage", "feature": "document_summarization", "model": GPT,
        "token_kind": "output", "quantity": 500_000, "unit_price": "5", "amount": "2.5",
        "period": f"{LAST_MONTH:%Y-%m}", "service_tier": "batch", "above_tokens": 0,
        "off_peak": False, "batch": True,
    }  # fmt: skip
    long = lines[(GEMINI, "input, above 200k")]
    assert (long["service_tier"], long["above_tokens"], long["unit_price"]) == (
        "standard", 200_000, "2.5")  # fmt: skip
    assert lines[(NIGHT, "cached input, off-peak")]["off_peak"] is True
    rounding = next(ln for ln in body["lines"] if not ln["token_kind"])
    assert rounding["rate"] is None


def test_the_csv_has_the_rate_columns_and_minor_unit_amounts(acme_client, month) -> None:
    text = acme_client.get(f"/api/v1/statements/{month.id}/csv").content.decode()
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert {"rate", "service_tier", "above_tokens", "off_peak", "batch"} <= set(CSV_COLUMNS)
    rows = list(reader)
    lines, total = rows[:-1], rows[-1]
    by_rate = {(r["model"], r["rate"]): r for r in lines if r["token_kind"]}
    for key, (quantity, unit, exact, amount) in EXPECTED.items():
        row = by_rate[key]
        assert (row["quantity"], row["unit_price_per_million"], row["amount_exact"],
                row["amount"]) == (str(quantity), unit, exact, amount), key  # fmt: skip
    batch = by_rate[(GPT, "batch input")]
    assert (batch["service_tier"], batch["batch"], batch["above_tokens"], batch["off_peak"]) == (
        "batch", "true", "0", "false")  # fmt: skip
    assert by_rate[(GEMINI, "output, above 200k")]["above_tokens"] == "200000"
    assert by_rate[(NIGHT, "input, off-peak")]["off_peak"] == "true"
    rounding = next(r for r in lines if not r["token_kind"])
    assert (rounding["amount"], rounding["rate"]) == ("-0.02", "")
    assert (total["kind"], total["amount"], total["amount_exact"]) == ("total", "11.81", "11.81")
    assert sum(Decimal(r["amount"]) for r in lines) == Decimal(total["amount"])


def test_the_pdf_names_each_rate(acme_client, month) -> None:
    response = acme_client.get(f"/api/v1/statements/{month.id}/pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    for model, rate in EXPECTED:
        assert f"document_summarization / {model}: {rate}\n" in text
    assert "queries, per 1M queries" in text  # the unit price of a query line
    assert "11.81 USD" in text
    # Cost by feature: the exact amounts, so the rounding line is no feature of its own.
    assert "document_summarization\n11.81 USD\n100.0%" in text
    assert "(no feature)" not in text


def test_the_admin_shows_each_lines_rate_and_tier(client, month) -> None:
    staff = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw")
    client.force_login(staff)
    page = client.get(f"/admin/statements/statement/{month.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    rates = re.findall(r'<td class="field-rate">\s*<p>(.*?)</p>', html)
    tiers = re.findall(r'<td class="field-service_tier">\s*<p>(.*?)</p>', html)
    assert sorted(rates) == sorted([rate for _, rate in EXPECTED] + ["-"])  # "-": rounding
    assert tiers.count("batch") == 2


@pytest.mark.parametrize(
    ("currency", "amounts", "total"),
    [("USD", ["2.50", "1.01"], "3.51"), ("JPY", ["3", "1"], "4"),
     ("KWD", ["2.500", "1.005"], "3.505")],
)  # fmt: skip
def test_csv_amounts_have_the_places_of_the_currency(operator, currency, amounts, total) -> None:
    tenant = TenantFactory(slug=f"in-{currency.lower()}", billing_currency=currency)
    post(operator, 1, tenant=tenant.slug, prefix="c", input_tokens=1_000_000,
         output_tokens=100_500, **NO_CACHE)  # fmt: skip
    statements_draft(now=CLOSING)
    statement = Statement.objects.get(tenant=tenant, period=LAST_MONTH.date())
    rows = list(csv.DictReader(io.StringIO(
        operator.get(f"/api/v1/statements/{statement.id}/csv").content.decode())))  # fmt: skip
    usage = [r for r in rows if r["token_kind"]]
    assert [r["amount"] for r in usage] == amounts
    assert [r["amount_exact"] for r in usage] == ["2.5", "1.005"]  # exact, as it was
    assert [r["unit_price_per_million"] for r in usage] == ["2.5", "10"]
    assert (rows[-1]["amount"], rows[-1]["currency"]) == (total, currency)


def test_focus_tells_each_unit_price_of_a_price_row_apart(operator, month) -> None:
    statements_finalize(now=CLOSING)
    response = operator.get(f"/api/v1/exports/focus?period={LAST_MONTH:%Y-%m}")
    usage = [r for r in csv.DictReader(io.StringIO(response.content.decode()))
             if r["ChargeCategory"] == "Usage"]  # fmt: skip
    by_price = {r["SkuPriceId"]: r for r in usage}
    assert len(by_price) == len(usage) == len(EXPECTED)  # one id per unit price
    gpt, gemini, claude = price_id("std-0"), price_id("long-0"), price_id("cache-0")
    rerank, night = price_id("rerank-0"), price_id("night-0")
    batch = by_price[f"{gpt}:batch:0:peak:input"]
    assert (batch["SkuId"], batch["ListUnitPrice"], batch["PricingCategory"]) == (
        f"{GPT}:input:batch", "1.25", "Standard")  # fmt: skip
    assert json.loads(batch["SkuPriceDetails"]) == {
        "x_ServiceTier": "batch", "x_AboveTokens": 0, "x_OffPeak": False, "x_Per": "1M tokens"
    }  # fmt: skip
    assert by_price[f"{gpt}:standard:0:peak:input"]["SkuId"] == f"{GPT}:input"
    long = by_price[f"{gemini}:standard:200000:peak:input"]
    short = by_price[f"{gemini}:standard:0:peak:input"]
    assert long["SkuId"] == short["SkuId"] == f"{GEMINI}:input"  # one SKU, two prices
    assert (long["ListUnitPrice"], short["ListUnitPrice"]) == ("2.5", "1.25")
    assert json.loads(long["SkuPriceDetails"])["x_AboveTokens"] == 200_000
    assert long["ChargeDescription"] == f"document_summarization / {GEMINI}: input, above 200k"
    hour = by_price[f"{claude}:standard:0:peak:cache_write_1h"]
    assert (hour["SkuId"], hour["SkuMeter"], hour["ListUnitPrice"]) == (
        f"{CLAUDE}:cache_write_1h", "Cache write tokens (1 h)", "6")  # fmt: skip
    assert by_price[f"{claude}:standard:0:peak:cache_write"]["ListUnitPrice"] == "3.75"
    queries = by_price[f"{rerank}:standard:0:peak:query"]
    assert (queries["ConsumedQuantity"], queries["ConsumedUnit"], queries["PricingQuantity"],
            queries["PricingUnit"], queries["ListUnitPrice"], queries["ListCost"]) == (
        "25", "Queries", "0.000025", "1M Queries", "2000", "0.05")  # fmt: skip
    assert json.loads(queries["SkuPriceDetails"])["x_Per"] == "1M queries"
    off_peak = by_price[f"{night}:standard:0:off_peak:input"]
    assert off_peak["PricingCategory"] == "Standard"  # a list price, known in advance
    assert json.loads(off_peak["SkuPriceDetails"])["x_OffPeak"] is True
    assert {r["PricingCategory"] for r in usage} == {"Standard"}


def test_late_usage_in_another_tier_is_adjusted_on_its_own_line(operator, acme, month) -> None:
    statements_finalize(now=CLOSING)
    post(operator, 1, prefix="late", service_tier="batch", input_tokens=1_000_000,
         output_tokens=0, **NO_CACHE)  # fmt: skip
    statements_draft(now=CLOSING + timedelta(hours=1))
    current = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    adjustment = current.lines.get(kind="adjustment")
    assert (adjustment.service_tier, adjustment.token_kind, adjustment.quantity) == (
        "batch", "input", 1_000_000)  # fmt: skip
    assert adjustment.amount_exact == Decimal("1.25")
    assert adjustment.description == (
        f"Adjustment for {LAST_MONTH:%Y-%m}: document_summarization / {GPT}: batch input"
    )


# --- Content hashes of statements finalized before rate classes -------------------------


def hash_without_rate_classes(statement: Statement, lines: list[StatementLine]) -> str:
    """`content_hash` as it was before lines had a service tier, long-prompt threshold
    and off-peak flag (batch was the only tier)."""
    document = {
        "number": statement.number,
        "tenant": statement.tenant.slug,
        "period": statement.period_label,
        "currency": statement.currency,
        "markup_percent": decimal_string(statement.markup_percent),
        "subtotal": decimal_string(statement.subtotal),
        "markup": decimal_string(statement.markup),
        "adjustments": decimal_string(statement.adjustments),
        "total": decimal_string(statement.total),
        "total_exact": decimal_string(statement.total_exact),
        "lines": [
            [ln.position, ln.kind, f"{ln.period:%Y-%m}", ln.feature, ln.model, ln.token_kind,
             ln.batch, ln.price_id, ln.quantity, decimal_string(ln.unit_price),
             decimal_string(ln.amount), decimal_string(ln.amount_exact)]
            for ln in lines
        ],
    }  # fmt: skip
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_hash_finalized_before_rate_classes_still_verifies() -> None:
    # Computed by the content_hash of before this change, for this very statement.
    before = "9210575f6a5ed66f21c5475b95ef79c154b6c1d15ea614e354df10270dd89411"
    period = date(2026, 3, 1)
    statement = Statement(number="ACME-2026-03", tenant=Tenant(slug="acme"), period=period,
                          currency="USD", markup_percent=Decimal(10), subtotal=Decimal("6.01"),
                          markup=Decimal("0.60"), adjustments=Decimal(0),
                          total=Decimal("6.61"), total_exact=Decimal("6.6055"))  # fmt: skip
    usage = {"kind": "usage", "period": period, "feature": "document_summarization",
             "model": GPT, "price_id": 41}  # fmt: skip
    lines = [
        StatementLine(position=1, token_kind="input", quantity=1_000_000,
                      unit_price=Decimal("2.5"), amount=Decimal("2.50"),
                      amount_exact=Decimal("2.5"), **usage),
        StatementLine(position=2, token_kind="output", quantity=100_500,
                      unit_price=Decimal("10"), amount=Decimal("1.01"),
                      amount_exact=Decimal("1.005"), **usage),
        # A batch line as the migration leaves it: service tier batch, nothing else.
        StatementLine(position=3, token_kind="input", batch=True, service_tier="batch",
                      quantity=2_000_000, unit_price=Decimal("1.25"), amount=Decimal("2.50"),
                      amount_exact=Decimal("2.5"), **usage),
        StatementLine(position=4, kind="markup", period=period, amount=Decimal("0.60"),
                      amount_exact=Decimal("0.6005")),
    ]  # fmt: skip
    assert hash_without_rate_classes(statement, lines) == before
    assert content_hash(statement, lines) == before


def test_standard_and_batch_lines_hash_as_before_a_new_class_counts(operator, acme) -> None:
    post(operator, 2, prefix="std")
    post(operator, 1, prefix="batch", service_tier="batch")
    statements_draft(now=CLOSING)
    statements_finalize(now=CLOSING)
    statement = Statement.objects.get(tenant=acme, period=LAST_MONTH.date())
    lines = list(statement.lines.order_by("position"))
    assert {ln.service_tier for ln in lines} == {"standard", "batch"}
    assert statement.content_hash == hash_without_rate_classes(statement, lines)
    assert statement_verify(statement)
    # A line billed at a long-prompt rate hashes its class: changing it shows.
    post(operator, 1, prefix="long", model=GEMINI, input_tokens=250_000, output_tokens=10,
         at=THIS_MONTH, **NO_CACHE)  # fmt: skip
    next_closing = period_end(MONTH, THIS_MONTH) + timedelta(days=3)
    statements_draft(now=next_closing)
    statements_finalize(now=next_closing)
    current = Statement.objects.get(tenant=acme, period=THIS_MONTH.date())
    lines = list(current.lines.order_by("position"))
    assert current.content_hash != hash_without_rate_classes(current, lines)
    assert statement_verify(current)
    StatementLine.objects.filter(statement=current, above_tokens=200_000).update(above_tokens=0)
    assert not statement_verify(current)
