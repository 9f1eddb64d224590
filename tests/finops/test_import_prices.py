from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from finops.models import BEGINNING_OF_TIME, ModelPrice
from finops.pricing import (
    DEFAULT_PRICE_FILE,
    RateCard,
    load_price_file,
    parse_litellm_prices,
    prices_import,
)
from finops.pricing.litellm_map import TAKEN_MODES

pytestmark = pytest.mark.django_db

CHANGE = datetime(2026, 11, 1, tzinfo=UTC)


def test_every_entry_of_litellms_real_map_is_imported_or_skipped_with_a_reason(
    litellm_price_file: Path,
) -> None:
    data = load_price_file(litellm_price_file)
    parsed = parse_litellm_prices(data)

    assert len(data) == 4242
    assert set(parsed.prices) | set(parsed.skipped) == set(data)
    assert not set(parsed.prices) & set(parsed.skipped)
    assert all(reason for reason in parsed.skipped.values())
    for name, reason in parsed.skipped.items():
        entry = data[name]
        if isinstance(entry, dict) and entry.get("mode") in TAKEN_MODES:
            # A skipped entry of a priced mode really lacks a usable price, and says which.
            assert "is not priced per token or per query" not in reason
            assert "input_cost_per_token" not in entry or "output_cost_per_token" not in entry \
                or "finer" in reason, (name, reason)  # fmt: skip
    reasons = set(parsed.skipped.values())
    assert "mode 'image_generation' is not priced per token or per query" in reasons
    assert "priced per second, not per token" in reasons
    # Embeddings, rerank models and ranges-only (tiered) models are priced now.
    modes = {p.fields["mode"] for p in parsed.prices.values()}
    assert modes == {"chat", "embedding", "rerank"}
    assert "dashscope/qwen-flash" in parsed.prices
    assert len(parsed.prices) > 3000


def test_import_of_the_real_map_stores_exact_per_million_prices(
    litellm_price_file: Path,
) -> None:
    out = StringIO()
    call_command("import_prices", str(litellm_price_file), stdout=out)

    gpt4o = ModelPrice.objects.get(model="gpt-4o")
    assert gpt4o.input_per_million == Decimal("2.5")
    assert gpt4o.cached_input_per_million == Decimal("1.25")
    assert gpt4o.output_per_million == Decimal("10")
    batch = {r.token_kind: r.per_million for r in gpt4o.rates.filter(service_tier="batch")}
    assert batch == {"input": Decimal("1.25"), "output": Decimal("5")}
    gemini = RateCard.of(ModelPrice.objects.get(model="gemini/gemini-2.5-pro"))
    assert gemini.explicit[("standard", "input", 200_000, False)] == Decimal("2.5")
    assert gemini.explicit[("standard", "output", 200_000, False)] == Decimal("15")
    opus = ModelPrice.objects.get(model="claude-opus-4-5")
    assert opus.cache_write_1h_per_million == Decimal("10")
    rerank = ModelPrice.objects.get(model="azure_ai/cohere-rerank-v3-english")
    assert (rerank.mode, rerank.per_query) == ("rerank", Decimal("0.002"))
    deepseek = RateCard.of(ModelPrice.objects.get(model="deepseek-v4-flash"))
    assert deepseek.explicit[("standard", "input", 0, True)] == Decimal("0.15")
    assert deepseek.windows
    sonnet = ModelPrice.objects.get(model="anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert sonnet.cache_write_per_million == Decimal("3.75")
    assert sonnet.cached_input_per_million == Decimal("0.3")
    # Every stored price equals the file's per-token price times 1M, digit for digit.
    data = load_price_file(litellm_price_file)
    tiered = [name for name, entry in data.items() if "tiered_pricing" in entry]
    for row in ModelPrice.objects.filter(source="litellm").exclude(model__in=tiered):
        entry = data[row.model]
        assert row.input_per_million == entry.get("input_cost_per_token", 0) * 1_000_000
        assert row.output_per_million == entry.get("output_cost_per_token", 0) * 1_000_000
        for rate in row.rates.all():
            assert rate.per_million == rate_in_file(entry, rate) * 1_000_000, (row.model, rate)
    assert "4242 entries" in out.getvalue()


_STEM = {"input": "input_cost_per_token", "output": "output_cost_per_token",
         "cached_input": "cache_read_input_token_cost",
         "cache_write": "cache_creation_input_token_cost",
         "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
         "reasoning": "output_cost_per_reasoning_token"}  # fmt: skip
_SUFFIX = {"standard": "", "batch": "_batches", "priority": "_priority", "flex": "_flex"}


def rate_in_file(entry: dict, rate) -> Decimal:
    """The map's own per-token figure for a stored rate, by LiteLLM's key names."""
    if rate.off_peak:
        return entry["off_peak_pricing"][_STEM[rate.token_kind]]
    band = ""
    if rate.above_tokens:
        n = rate.above_tokens
        band = f"_above_{n // 1000}k_tokens" if n % 1000 == 0 else f"_above_{n}_tokens"
    return entry[_STEM[rate.token_kind] + band + _SUFFIX[rate.service_tier]]


def test_reimporting_unchanged_prices_adds_nothing(litellm_price_file: Path) -> None:
    call_command("import_prices", str(litellm_price_file), stdout=StringIO())
    count = ModelPrice.objects.count()
    out = StringIO()
    call_command("import_prices", str(litellm_price_file), stdout=out)
    assert ModelPrice.objects.count() == count
    assert "0 new models, 0 changed prices" in out.getvalue()


def test_first_price_applies_to_all_time_and_a_change_is_a_new_row(tmp_path: Path) -> None:
    entry = {
        "mode": "chat",
        "litellm_provider": "acme-ai",
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"acme-model-1": entry}))
    call_command("import_prices", str(path), stdout=StringIO())
    (first,) = ModelPrice.objects.filter(model="acme-model-1")
    assert first.effective_from == BEGINNING_OF_TIME
    assert first.provider == "acme-ai"

    path.write_text(json.dumps({"acme-model-1": {**entry, "input_cost_per_token": 5e-07}}))
    call_command(
        "import_prices", str(path), "--effective-from", CHANGE.isoformat(), stdout=StringIO()
    )

    old, new = ModelPrice.objects.filter(model="acme-model-1").order_by("effective_from")
    assert (old.input_per_million, old.effective_from) == (Decimal("1"), BEGINNING_OF_TIME)
    assert (new.input_per_million, new.effective_from) == (Decimal("0.5"), CHANGE)


def test_numbers_are_read_as_decimals_never_floats(tmp_path: Path) -> None:
    # 1.1e-07 is not exact as a float: 0.10999999999999999 per 1M after a float multiply.
    path = tmp_path / "prices.json"
    path.write_text(
        '{"m": {"mode": "chat", "input_cost_per_token": 1.1e-07, "output_cost_per_token": 3.3e-07}}'
    )
    call_command("import_prices", str(path), stdout=StringIO())
    row = ModelPrice.objects.get(model="m")
    assert row.input_per_million == Decimal("0.11")
    assert row.output_per_million == Decimal("0.33")


def test_parse_rejects_floats_so_no_caller_can_slip_one_in() -> None:
    with pytest.raises(TypeError):
        parse_litellm_prices(
            {"m": {"mode": "chat", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
        )


def test_import_command_reports_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_prices", str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_prices", str(bad))
    with pytest.raises(CommandError, match="UTC offset"):
        call_command("import_prices", str(bad), "--effective-from", "2026-11-01T00:00:00")


def test_the_default_table_is_loaded_by_migrations_for_every_major_provider() -> None:
    providers = set(ModelPrice.objects.values_list("provider", flat=True))
    assert {"openai", "anthropic", "bedrock", "mistral"} <= providers
    assert providers & {"gemini", "vertex_ai-language-models"}
    defaults = load_price_file(DEFAULT_PRICE_FILE)
    assert ModelPrice.objects.count() == len(parse_litellm_prices(defaults).prices)
    assert ModelPrice.objects.get(model="claude-sonnet-4-5").cached_input_per_million == Decimal(
        "0.3"
    )


def test_the_default_table_matches_litellms_map(litellm_price_file: Path) -> None:
    real = load_price_file(litellm_price_file)
    defaults = load_price_file(DEFAULT_PRICE_FILE)
    for name, entry in defaults.items():
        original = (
            real[entry["source"][1:]] if entry.get("source", "").startswith("=") else (real[name])
        )
        for field in (
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_read_input_token_cost",
            "cache_creation_input_token_cost",
        ):
            assert entry.get(field) == original.get(field), (name, field)


def test_unchanged_import_is_idempotent_at_the_service_level() -> None:
    data = {
        "m": {
            "mode": "chat",
            "input_cost_per_token": Decimal("1e-6"),
            "output_cost_per_token": Decimal("2e-6"),
        }
    }
    first = prices_import(data=data, effective_from=CHANGE)
    second = prices_import(data=data, effective_from=CHANGE)
    assert (first.created, second.created, second.unchanged) == (1, 0, 1)


def test_the_finest_prices_of_the_real_map_give_exact_stored_costs(
    litellm_price_file: Path, operator, acme
) -> None:
    from fractions import Fraction

    from ingestion.models import UsageEvent
    from tests.conftest import event, post_events

    call_command("import_prices", str(litellm_price_file), stdout=StringIO())
    finest = "novita/nvidia/nemotron-3-nano-30b-a3b"  # 5.0000000000000004E-8 per token
    price = ModelPrice.objects.get(model=finest)
    assert price.input_per_million == Decimal("0.050000000000000004")
    discounted = ModelPrice.objects.create(
        model="discounted",
        input_per_million=price.input_per_million,
        output_per_million=Decimal("0.123456789012345678"),
        batch_discount_percent=Decimal("33.333"),
    )
    post_events(
        operator,
        event(
            event_id="fine",
            model=finest,
            input_tokens=123_457,
            cached_input_tokens=0,
            output_tokens=7,
        ),
    )
    post_events(
        operator,
        event(
            event_id="batch",
            model=discounted.model,
            batch=True,
            input_tokens=987_654_321,
            cached_input_tokens=0,
            output_tokens=3,
        ),
    )

    fine = UsageEvent.objects.get(event_id="fine")
    assert (
        Fraction(fine.cost)
        == (123_457 * Fraction(price.input_per_million) + 7 * Fraction(price.output_per_million))
        / 1_000_000
    )
    batch = UsageEvent.objects.get(event_id="batch")
    keep = Fraction(100 - Decimal("33.333")) / 100
    assert (
        Fraction(batch.cost)
        == (
            987_654_321 * Fraction(price.input_per_million) * keep
            + 3 * Fraction(Decimal("0.123456789012345678")) * keep
        )
        / 1_000_000
    )


def test_non_numbers_in_a_price_file_are_refused_or_skipped(tmp_path: Path) -> None:
    bare_nan = tmp_path / "nan.json"
    bare_nan.write_text('{"m": {"mode": "chat", "input_cost_per_token": NaN, '
                        '"output_cost_per_token": 1e-6}}')  # fmt: skip
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_prices", str(bare_nan), stdout=StringIO())
    text = tmp_path / "inf.json"
    text.write_text('{"m": {"mode": "chat", "input_cost_per_token": "Infinity", '
                    '"output_cost_per_token": "NaN"}}')  # fmt: skip
    call_command("import_prices", str(text), stdout=StringIO())
    assert not ModelPrice.objects.filter(model="m").exists()


def test_an_entry_the_columns_cannot_hold_is_skipped_with_its_reason() -> None:
    """Whatever path reads the file (command, admin, API), one bad entry is skipped and
    the others are taken: never a failed import, never a silently rounded price."""
    good = {"mode": "chat", "input_cost_per_token": Decimal("1e-6"),
            "output_cost_per_token": Decimal("2e-6")}  # fmt: skip
    parsed = parse_litellm_prices(
        {
            "good": good,
            "listed-mode": {**good, "mode": ["chat"]},
            "huge": {**good, "input_cost_per_token": Decimal("1e9")},
            "overflow": {**good, "input_cost_per_token": Decimal("1e999999999")},
            "too-fine": {**good, "input_cost_per_token": Decimal("1e-40")},
            "nul\x00": good,
        }
    )
    assert set(parsed.prices) == {"good"}
    assert parsed.skipped["huge"] == "price out of range"
    assert parsed.skipped["nul\x00"] == "contains a NUL character"
    assert parsed.skipped["too-fine"].startswith("price finer than")
    assert "listed-mode" in parsed.skipped and "overflow" in parsed.skipped
