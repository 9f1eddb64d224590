from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finops.models import BEGINNING_OF_TIME, ModelPrice, PriceRate
from finops.pricing import PriceBook, RateCard, TokenVector, token_cost

pytestmark = pytest.mark.django_db


def _price(**fields: str | None) -> ModelPrice:
    values = {"input_per_million": "2.5", "output_per_million": "10"}
    values.update(fields)
    return ModelPrice(
        model="m",
        **{k: (Decimal(v) if v is not None else None) for k, v in values.items()},
    )


def test_each_token_kind_is_charged_at_its_own_price() -> None:
    price = _price(
        cached_input_per_million="1.25", cache_write_per_million="3.75", reasoning_per_million="12"
    )
    tokens = TokenVector(
        input=1_000_000,
        cached_input=200_000,
        cache_write=100_000,
        output=500_000,
        reasoning=100_000,
    )
    # 700k uncached x 2.5 + 200k x 1.25 + 100k x 3.75 + 400k x 10 + 100k x 12, per 1M
    assert token_cost(tokens=tokens, price=price) == Decimal("1.75") + Decimal("0.25") + Decimal(
        "0.375"
    ) + Decimal("4") + Decimal("1.2")


def test_missing_optional_prices_fall_back_to_input_and_output() -> None:
    price = _price()
    tokens = TokenVector(input=1000, cached_input=400, cache_write=100, output=50, reasoning=20)
    # every input kind at the input price, reasoning at the output price
    assert token_cost(tokens=tokens, price=price) == Decimal("0.0025") + Decimal("0.0005")


def _batch_rates(input_: Decimal | None, output: Decimal | None) -> list[PriceRate]:
    return [
        PriceRate(service_tier="batch", token_kind=kind, per_million=value)
        for kind, value in (("input", input_), ("output", output))
        if value is not None
    ]


def test_batch_uses_batch_prices_then_the_discount() -> None:
    explicit = RateCard(_price(), _batch_rates(Decimal("1.25"), Decimal("5")))
    tokens = TokenVector(input=1_000_000, output=1_000_000, cached_input=200_000)
    # 800k x 1.25 + 200k cached (no cached price: billed as input, at the batch input rate)
    # + 1M x 5, per 1M
    assert token_cost(tokens=tokens, price=explicit, service_tier="batch") == Decimal("6.25")
    assert token_cost(tokens=tokens, price=explicit) == Decimal("12.5")
    discounted = _price(batch_discount_percent="50")
    assert token_cost(tokens=tokens, price=discounted, service_tier="batch") == Decimal("6.25")
    # No batch price, no discount and no vendor rule for an unnamed provider: full price.
    no_batch_price = _price()
    assert token_cost(tokens=tokens, price=no_batch_price, service_tier="batch") == Decimal("12.5")


def test_zero_tokens_cost_nothing() -> None:
    assert token_cost(tokens=TokenVector(input=0, output=0), price=_price()) == 0


prices = st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False)
optional_prices = st.none() | prices


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    input_price=prices,
    output_price=prices,
    cached_price=optional_prices,
    write_price=optional_prices,
    reasoning_price=optional_prices,
    batch_input=optional_prices,
    batch_output=optional_prices,
    discount=st.none() | st.decimals(min_value=0, max_value=100, places=3),
    batch=st.booleans(),
)
def test_cost_equals_exact_rational_arithmetic(
    data,
    input_price,
    output_price,
    cached_price,
    write_price,
    reasoning_price,
    batch_input,
    batch_output,
    discount,
    batch,
) -> None:
    input_tokens = data.draw(st.integers(0, 10**9))
    cached = data.draw(st.integers(0, input_tokens))
    write = data.draw(st.integers(0, input_tokens - cached))
    output_tokens = data.draw(st.integers(0, 10**9))
    reasoning = data.draw(st.integers(0, output_tokens))
    price = RateCard(
        ModelPrice(
            model="m",
            input_per_million=input_price,
            output_per_million=output_price,
            cached_input_per_million=cached_price,
            cache_write_per_million=write_price,
            reasoning_per_million=reasoning_price,
            batch_discount_percent=discount,
        ),
        _batch_rates(batch_input, batch_output),
    )
    tokens = TokenVector(
        input=input_tokens,
        output=output_tokens,
        cached_input=cached,
        cache_write=write,
        reasoning=reasoning,
    )

    f = Fraction
    p_in, p_out = f(input_price), f(output_price)
    p_cached = f(cached_price) if cached_price is not None else p_in
    p_write = f(write_price) if write_price is not None else p_in
    p_reason = f(reasoning_price) if reasoning_price is not None else None
    if batch:
        # The row's discount; else the ratio its own batch rates share; else none.
        keep = f(1)
        if discount is not None:
            keep = (100 - f(discount)) / 100
        elif None not in (batch_input, batch_output) and input_price and output_price:
            ratios = {f(batch_input) / p_in, f(batch_output) / p_out}
            exact = all(Decimal(r.numerator) / Decimal(r.denominator) == r for r in ratios)
            keep = ratios.pop() if len(ratios) == 1 and exact else f(1)
        u_in = f(batch_input) if batch_input is not None else p_in * keep
        u_out = f(batch_output) if batch_output is not None else p_out * keep
        # A kind without a price of its own is billed as input (output), at its tier rate.
        u_cached = p_cached * keep if cached_price is not None else u_in
        u_write = p_write * keep if write_price is not None else u_in
        # Reasoning is output: the tier's own output rate, where the row states one.
        if batch_output is not None or p_reason is None:
            u_reason = u_out
        else:
            u_reason = p_reason * keep
    else:
        u_in, u_out, u_cached, u_write = p_in, p_out, p_cached, p_write
        u_reason = p_reason if p_reason is not None else p_out
    expected = (
        (input_tokens - cached - write) * u_in
        + cached * u_cached
        + write * u_write
        + (output_tokens - reasoning) * u_out
        + reasoning * u_reason
    ) / 1_000_000

    tier = "batch" if batch else "standard"
    assert Fraction(token_cost(tokens=tokens, price=price, service_tier=tier)) == expected


def test_price_book_finds_the_row_in_force_at_the_event_time() -> None:
    change = datetime(2026, 11, 1, tzinfo=UTC)
    old = ModelPrice.objects.create(model="m1", input_per_million=1, output_per_million=2)
    new = ModelPrice.objects.create(
        model="m1", effective_from=change, input_per_million=3, output_per_million=4
    )
    book = PriceBook.for_models({"m1"})
    assert book.find(model="m1", provider="", at=change - timedelta(seconds=1)).price == old
    assert book.find(model="m1", provider="", at=change).price == new
    assert book.find(model="m1", provider="", at=BEGINNING_OF_TIME).price == old
    assert book.find(model="unknown", provider="", at=change) is None


def test_price_book_finds_the_provider_prefixed_name() -> None:
    row = ModelPrice.objects.create(
        model="acme-ai/small-latest", input_per_million=1, output_per_million=3
    )
    book = PriceBook.for_models({"small-latest"}, {"acme-ai"})
    now = datetime.now(UTC)
    assert book.find(model="small-latest", provider="acme-ai", at=now).price == row
    assert book.find(model="small-latest", provider="", at=now) is None


def test_a_named_provider_is_priced_at_its_own_row_before_the_bare_name() -> None:
    # gpt-4-turbo-2024-04-09 on Azure costs Azure's price, not OpenAI's.
    openai = ModelPrice.objects.create(
        model="gpt-4-turbo-x", provider="openai", input_per_million=10, output_per_million=30
    )
    azure = ModelPrice.objects.create(
        model="azure/gpt-4-turbo-x", provider="azure", input_per_million=11, output_per_million=33
    )
    mistral = ModelPrice.objects.create(
        model="mistral/small-x", provider="mistral", input_per_million=1, output_per_million=3
    )
    now = datetime.now(UTC)
    book = PriceBook.for_models(
        {"gpt-4-turbo-x", "small-x"}, {"azure", "azure.ai.openai", "openai", "mistral_ai"}
    )
    assert book.find(model="gpt-4-turbo-x", provider="azure", at=now).price == azure
    # OpenTelemetry's provider names are aliases of the price map's.
    assert book.find(model="gpt-4-turbo-x", provider="azure.ai.openai", at=now).price == azure
    assert book.find(model="small-x", provider="mistral_ai", at=now).price == mistral
    # A provider without a row of its own: the bare name.
    assert book.find(model="gpt-4-turbo-x", provider="openai", at=now).price == openai
    assert book.find(model="gpt-4-turbo-x", provider="", at=now).price == openai


def test_a_region_with_its_own_price_is_priced_at_it() -> None:
    # The price map names Azure's data zones and Bedrock's regions: azure/eu/gpt-4o costs
    # 2.75 USD per 1M input tokens where azure/gpt-4o costs 2.50.
    global_row = ModelPrice.objects.create(
        model="azure/gpt-4o-x", provider="azure", input_per_million="2.5", output_per_million=10
    )
    eu = ModelPrice.objects.create(
        model="azure/eu/gpt-4o-x", provider="azure", input_per_million="2.75",
        output_per_million=11,
    )  # fmt: skip
    now = datetime.now(UTC)
    book = PriceBook.for_models({"gpt-4o-x"}, {"azure"}, {"eu", "us"})
    assert book.find(model="gpt-4o-x", provider="azure", at=now, region="eu").price == eu
    # A region without a row of its own: the provider's row.
    assert book.find(model="gpt-4o-x", provider="azure", at=now, region="us").price == global_row
    assert book.find(model="gpt-4o-x", provider="azure", at=now).price == global_row
    # Regions are matched as the map writes them; a '/' is no region.
    assert book.find(model="gpt-4o-x", provider="azure", at=now, region=" EU ").price == eu
    assert book.has(model="gpt-4o-x", provider="azure", region="eu")
    assert book.find(model="gpt-4o-x", provider="azure", at=now, region="eu/x").price == (
        global_row)  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        {"input_per_million": Decimal("-0.000001")},
        {"output_per_million": Decimal("-1")},
        {"batch_discount_percent": Decimal("100.001")},
        {"batch_discount_percent": Decimal("-5")},
    ],
)
def test_the_database_refuses_impossible_prices(bad) -> None:
    from django.db import IntegrityError, transaction

    values = {"input_per_million": Decimal("1"), "output_per_million": Decimal("2"), **bad}
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelPrice.objects.create(model="impossible", **values)


def test_prices_and_costs_keep_every_digit_in_the_database() -> None:
    exact = Decimal("15.000020000000000002")
    ModelPrice.objects.create(model="exact", input_per_million=exact, output_per_million=exact)
    assert ModelPrice.objects.get(model="exact").input_per_million == exact
    assert ModelPrice.objects.filter(model="exact", input_per_million=exact).exists()


def _entry(provider: str) -> dict:
    return {"x-model": {"mode": "chat", "litellm_provider": provider,
                        "input_cost_per_token": Decimal("2e-6"),
                        "output_cost_per_token": Decimal("8e-6")}}  # fmt: skip


def test_a_rows_vendor_rules_are_frozen_with_it_and_a_change_is_a_new_row(monkeypatch) -> None:
    from finops.pricing import prices_import, rules
    from finops.pricing.rules import VendorRule

    start = datetime(2026, 1, 1, tzinfo=UTC)
    prices_import(data=_entry("together_ai"), effective_from=start)
    tokens = TokenVector(input=1_000_000, output=1_000_000)
    (first,) = ModelPrice.objects.filter(model="x-model")
    # No batch rule for the provider: batch keeps the standard rate (2 + 8).
    assert token_cost(tokens=tokens, price=first, service_tier="batch") == Decimal("10")

    # The rule table learns a batch rule for the provider.
    added = VendorRule(
        name="together batch",
        source="test",
        providers=frozenset({"together_ai"}),
        tiers={"batch": Decimal("0.5")},
    )
    monkeypatch.setattr(rules, "VENDOR_RULES", (*rules.VENDOR_RULES, added))  # fmt: skip
    rules.rules_for.cache_clear()
    try:
        # The row that may have priced events keeps what it billed...
        assert token_cost(
            tokens=tokens, price=ModelPrice.objects.get(pk=first.pk), service_tier="batch"
        ) == Decimal("10")
        # ...and an import makes the rule a new row, from its effective date.
        change = datetime(2026, 6, 1, tzinfo=UTC)
        result = prices_import(data=_entry("together_ai"), effective_from=change)
        assert (result.changed, result.unchanged) == (1, 0)
        new = ModelPrice.objects.get(model="x-model", effective_from=change)
        assert token_cost(tokens=tokens, price=new, service_tier="batch") == Decimal("5")
    finally:
        rules.rules_for.cache_clear()


def test_a_row_from_before_tiers_prices_as_it_billed() -> None:
    """Rows that existed when tiers came keep the old model: no vendor rule, no tier but
    batch, batch from the row's own batch rates or discount only."""
    legacy = ModelPrice(model="claude-old", provider="anthropic", rules={"legacy": True},
                        input_per_million=Decimal("3"), output_per_million=Decimal("15"),
                        cached_input_per_million=Decimal("0.3"))  # fmt: skip
    card = RateCard(legacy, _batch_rates(Decimal("1.5"), None))
    tokens = TokenVector(input=1_000_000, cached_input=200_000, cache_write=100_000,
                         cache_write_1h=50_000, output=100_000, reasoning=40_000)  # fmt: skip
    # Standard: 700k x 3 + 200k x 0.3 + 100k writes at the input rate 3 (no Anthropic
    # 1.25x / 2x rule) + 100k output x 15 = 2.1 + 0.06 + 0.3 + 1.5
    assert token_cost(tokens=tokens, price=card) == Decimal("3.96")
    # Priority did not exist: the standard rates.
    assert token_cost(tokens=tokens, price=card, service_tier="priority") == Decimal("3.96")
    # Batch: own batch input 1.5; cached, writes and output at full price (no discount,
    # no rule); reasoning at the batch output rate (full): 700k x 1.5 + 0.06 + 0.3 + 1.5
    assert token_cost(tokens=tokens, price=card, service_tier="batch") == Decimal("2.91")
    # The vendor's rules would give half of everything in batch.
    current = RateCard(ModelPrice(model="claude-new", provider="anthropic",
                                  input_per_million=Decimal("3"), output_per_million=Decimal("15"),
                                  cached_input_per_million=Decimal("0.3")), [])  # fmt: skip
    assert token_cost(tokens=tokens, price=current, service_tier="batch") < Decimal("2.91")
