"""Each vendor pricing rule of finops.pricing.rules, on a figure worked out by hand.

Rates are per 1M tokens: a cost is tokens x rate / 1,000,000. The real rows are LiteLLM's
entries (the shared map); the hand-made ones are rows the map has no counterpart of.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from finops.models import ModelPrice
from finops.pricing import (
    PriceBook,
    RateCard,
    TokenVector,
    load_price_file,
    prices_import,
    token_cost,
)
from tests.conftest import SHARED_PRICE_FILE

pytestmark = pytest.mark.django_db

IMPORTED_FROM = datetime(2020, 1, 1, tzinfo=UTC)
WEDNESDAY_0800 = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
WEDNESDAY_1200 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
SATURDAY_0800 = datetime(2026, 3, 7, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def price_map() -> Mapping[str, Any]:
    if not SHARED_PRICE_FILE.exists():
        pytest.skip("LiteLLM's price map is not beside the repository (../shared/data/)")
    return load_price_file(SHARED_PRICE_FILE)


@pytest.fixture
def real_card(price_map: Mapping[str, Any]):
    """The card of a model of the real map, imported on its own."""

    def card(name: str) -> RateCard:
        prices_import(data={name: price_map[name]}, effective_from=IMPORTED_FROM)
        found = PriceBook.for_models([name]).find(model=name, provider="", at=WEDNESDAY_0800)
        assert found is not None
        return found

    return card


def _row(provider: str, model: str, **per_million: str) -> ModelPrice:
    return ModelPrice(
        provider=provider,
        model=model,
        **{f"{kind}_per_million": Decimal(rate) for kind, rate in per_million.items()},
    )


# --- OpenAI ------------------------------------------------------------------------------

# gpt-4o: input 2.50, cached 1.25, output 10; batch input 1.25, output 5 and no batch
# cached rate; priority input 4.25, cached 2.125, output 17; no flex rate.
GPT_4O_CALL = TokenVector(input=1_000_000, cached_input=400_000, output=200_000)


def test_openai_batch_is_half_of_every_kind_cached_input_included(real_card) -> None:
    card = real_card("gpt-4o")
    # 600k x 2.50 + 400k x 1.25 + 200k x 10 = 1.50 + 0.50 + 2.00
    assert token_cost(tokens=GPT_4O_CALL, price=card, at=WEDNESDAY_0800) == Decimal("4.00")
    # 600k x 1.25 + 400k x 0.625 (half of 1.25: no batch cached rate) + 200k x 5
    # = 0.75 + 0.25 + 1.00
    batch = token_cost(tokens=GPT_4O_CALL, price=card, service_tier="batch", at=WEDNESDAY_0800)
    assert batch == Decimal("2.00")


def test_openai_flex_is_half_of_the_standard_rate_where_the_row_states_no_flex_rate(
    real_card,
) -> None:
    card = real_card("gpt-4o")
    # 600k x 1.25 + 400k x 0.625 + 200k x 5 = 0.75 + 0.25 + 1.00
    flex = token_cost(tokens=GPT_4O_CALL, price=card, service_tier="flex", at=WEDNESDAY_0800)
    assert flex == Decimal("2.00")


def test_openai_priority_is_the_rows_own_priority_rate(real_card) -> None:
    card = real_card("gpt-4o")
    # 600k x 4.25 + 400k x 2.125 + 200k x 17 = 2.55 + 0.85 + 3.40
    priority = token_cost(
        tokens=GPT_4O_CALL, price=card, service_tier="priority", at=WEDNESDAY_0800
    )
    assert priority == Decimal("6.80")


# --- Anthropic ---------------------------------------------------------------------------

# A Claude row with no cache prices: input 3, output 15. Anthropic's rules: a 5 min cache
# write is 1.25x input (3.75), a 1 h write 2x input (6), a cache read 0.1x input (0.30);
# batch is half of each of them.
CLAUDE_CALL = TokenVector(
    input=1_000_000,
    cached_input=300_000,
    cache_write=300_000,
    cache_write_1h=100_000,
    output=100_000,
)


def test_anthropic_cache_multipliers_fill_the_rates_the_row_lacks() -> None:
    claude = _row("anthropic", "claude-test", input="3", output="15")
    # 400k x 3 + 300k x 0.30 + 200k x 3.75 + 100k x 6 + 100k x 15
    # = 1.20 + 0.09 + 0.75 + 0.60 + 1.50
    assert token_cost(tokens=CLAUDE_CALL, price=claude, at=WEDNESDAY_0800) == Decimal("4.14")


def test_anthropic_one_hour_cache_write_is_twice_input_without_a_one_hour_price() -> None:
    claude = _row("anthropic", "claude-test", input="3", output="15", cache_write="3.75")
    one_hour = TokenVector(
        input=1_000_000, cache_write=1_000_000, cache_write_1h=1_000_000, output=0
    )
    five_minutes = TokenVector(input=1_000_000, cache_write=1_000_000, output=0)
    # 1M x 6 (2 x 3), not the 5 min rate 3.75
    assert token_cost(tokens=one_hour, price=claude, at=WEDNESDAY_0800) == Decimal("6")
    assert token_cost(tokens=five_minutes, price=claude, at=WEDNESDAY_0800) == Decimal("3.75")


def test_anthropic_batch_stacks_with_the_cache_multipliers() -> None:
    claude = _row("anthropic", "claude-test", input="3", output="15")
    # 400k x 1.50 + 300k x 0.15 (0.5 x 0.1 x 3) + 200k x 1.875 + 100k x 3 + 100k x 7.50
    # = 0.60 + 0.045 + 0.375 + 0.30 + 0.75
    batch = token_cost(tokens=CLAUDE_CALL, price=claude, service_tier="batch", at=WEDNESDAY_0800)
    assert batch == Decimal("2.07")


# --- Google ------------------------------------------------------------------------------

# gemini/gemini-2.5-pro: input 1.25 and output 10 up to 200k prompt tokens, 2.50 and 15
# above; batch input 0.625, output 5, and no batch rate above 200k.


def test_gemini_prompts_above_200k_tokens_are_billed_wholly_at_the_long_context_rate(
    real_card,
) -> None:
    card = real_card("gemini/gemini-2.5-pro")
    at_threshold = TokenVector(input=200_000, output=10_000)
    above = TokenVector(input=250_000, output=10_000)
    # 200k x 1.25 + 10k x 10 = 0.25 + 0.10 (200k is not above 200k)
    assert token_cost(tokens=at_threshold, price=card, at=WEDNESDAY_0800) == Decimal("0.35")
    # 250k x 2.50 + 10k x 15 = 0.625 + 0.15
    assert token_cost(tokens=above, price=card, at=WEDNESDAY_0800) == Decimal("0.775")


def test_gemini_thinking_tokens_bill_at_each_tiers_output_rate(real_card) -> None:
    # gemini/gemini-2.5-flash: input 0.30, output 2.50 and a reasoning rate of 2.50; flex
    # 0.15 / 1.25 and priority 0.54 / 4.50 with no reasoning rate of their own. Google
    # bills thinking as output, so a tier's thinking costs its output rate.
    card = real_card("gemini/gemini-2.5-flash")
    call = TokenVector(input=1_000_000, output=1_000_000, reasoning=1_000_000)
    at = WEDNESDAY_0800
    assert token_cost(tokens=call, price=card, at=at) == Decimal("2.80")  # 0.30 + 2.50
    assert token_cost(tokens=call, price=card, service_tier="flex", at=at) == Decimal("1.40")
    priority = token_cost(tokens=call, price=card, service_tier="priority", at=at)
    assert priority == Decimal("5.04")  # 0.54 + 4.50


def test_gemini_batch_above_200k_tokens_is_half_of_the_long_context_rate(real_card) -> None:
    card = real_card("gemini/gemini-2.5-pro")
    at_threshold = TokenVector(input=200_000, output=10_000)
    above = TokenVector(input=250_000, output=10_000)
    # 200k x 0.625 + 10k x 5 = 0.125 + 0.05
    assert token_cost(
        tokens=at_threshold, price=card, service_tier="batch", at=WEDNESDAY_0800
    ) == Decimal("0.175")
    # 250k x 1.25 (half of 2.50) + 10k x 7.50 (half of 15) = 0.3125 + 0.075
    assert token_cost(tokens=above, price=card, service_tier="batch", at=WEDNESDAY_0800) == Decimal(
        "0.3875"
    )


# --- xAI ---------------------------------------------------------------------------------


def test_xai_long_context_rate_starts_at_the_threshold_itself(real_card) -> None:
    # input 1.25 and output 2.50; 2.50 and 5 from 200k prompt tokens on
    card = real_card("xai/grok-4.20-multi-agent-beta-0309")
    # 199,999 x 1.25 + 1,000 x 2.50 = 0.24999875 + 0.0025
    below = TokenVector(input=199_999, output=1_000)
    assert token_cost(tokens=below, price=card, at=WEDNESDAY_0800) == Decimal("0.25249875")
    # 200,000 x 2.50 + 1,000 x 5 = 0.50 + 0.005
    at_threshold = TokenVector(input=200_000, output=1_000)
    assert token_cost(tokens=at_threshold, price=card, at=WEDNESDAY_0800) == Decimal("0.505")


# --- DeepSeek ----------------------------------------------------------------------------


def test_deepseek_off_peak_rates_apply_inside_the_window_only(real_card) -> None:
    # input 1.32, cached 0.044, output 3.96; off-peak (weekdays 00:00-01:00, 04:00-06:00
    # and 10:00-24:00 UTC, all weekend) 0.66, 0.022 and 1.98
    card = real_card("deepseek/deepseek-v4-pro")
    call = TokenVector(input=1_000_000, cached_input=200_000, output=100_000)
    # Wednesday 08:00 UTC, peak: 800k x 1.32 + 200k x 0.044 + 100k x 3.96
    # = 1.056 + 0.0088 + 0.396
    assert token_cost(tokens=call, price=card, at=WEDNESDAY_0800) == Decimal("1.4608")
    # Wednesday 12:00 UTC, off-peak: 800k x 0.66 + 200k x 0.022 + 100k x 1.98
    # = 0.528 + 0.0044 + 0.198
    assert token_cost(tokens=call, price=card, at=WEDNESDAY_1200) == Decimal("0.7304")
    # Saturday 08:00 UTC: the weekend is off-peak all day
    assert token_cost(tokens=call, price=card, at=SATURDAY_0800) == Decimal("0.7304")


# --- Fireworks ---------------------------------------------------------------------------


def test_fireworks_cached_input_is_half_of_input_without_a_cached_price() -> None:
    row = _row("fireworks_ai", "fireworks-test", input="0.90", output="0.90")
    call = TokenVector(input=1_000_000, cached_input=600_000, output=0)
    # 400k x 0.90 + 600k x 0.45 = 0.36 + 0.27
    assert token_cost(tokens=call, price=row, at=WEDNESDAY_0800) == Decimal("0.63")


# --- Alibaba (dashscope) -----------------------------------------------------------------


def test_dashscope_tiered_prompt_is_billed_wholly_at_its_range(real_card) -> None:
    # qwen-flash: input 0.05 and output 0.40 up to 256k prompt tokens; 0.25 and 2 above
    card = real_card("dashscope/qwen-flash")
    # 300k x 0.25 + 10k x 2 = 0.075 + 0.02: every token at the upper range, not 256k of
    # them at the lower one
    upper = TokenVector(input=300_000, output=10_000)
    assert token_cost(tokens=upper, price=card, at=WEDNESDAY_0800) == Decimal("0.095")
    # 256k x 0.05 + 10k x 0.40 = 0.0128 + 0.004: the lower range ends at 256k inclusive
    lower = TokenVector(input=256_000, output=10_000)
    assert token_cost(tokens=lower, price=card, at=WEDNESDAY_0800) == Decimal("0.0168")


# --- Mistral -----------------------------------------------------------------------------


def test_mistral_batch_is_half_of_the_standard_rate(real_card) -> None:
    # mistral-large-latest: input 0.50, cached 0.05, output 1.50; no batch rates
    card = real_card("mistral/mistral-large-latest")
    call = TokenVector(input=1_000_000, cached_input=100_000, output=100_000)
    # 900k x 0.50 + 100k x 0.05 + 100k x 1.50 = 0.45 + 0.005 + 0.15
    assert token_cost(tokens=call, price=card, at=WEDNESDAY_0800) == Decimal("0.605")
    # half of each: 900k x 0.25 + 100k x 0.025 + 100k x 0.75 = 0.225 + 0.0025 + 0.075
    batch = token_cost(tokens=call, price=card, service_tier="batch", at=WEDNESDAY_0800)
    assert batch == Decimal("0.3025")


# --- No rule -----------------------------------------------------------------------------


def test_a_provider_without_a_batch_rule_keeps_the_standard_rate_in_batch() -> None:
    row = _row("together_ai", "together-test", input="0.88", output="0.88")
    call = TokenVector(input=1_000_000, output=100_000)
    # 1M x 0.88 + 100k x 0.88 = 0.88 + 0.088, in both tiers
    assert token_cost(tokens=call, price=row, at=WEDNESDAY_0800) == Decimal("0.968")
    batch = token_cost(tokens=call, price=row, service_tier="batch", at=WEDNESDAY_0800)
    assert batch == Decimal("0.968")
