"""finops prices like LiteLLM's own cost code on the real price map, except where LiteLLM
departs from the vendor's published rule.

A seeded sample of a few hundred token-priced models of the major vendors (and of every
pricing feature the map has: long-context bands, tiered ranges, priority, flex, batch,
1 h cache writes, off-peak hours) is priced on seeded random token vectors in every
service tier the vendor sells, by finops (exact) and by LiteLLM 1.106.2 (floats). Every
disagreement must belong to one of the divergence classes below, each a named predicate
with the vendor's rule that says LiteLLM is the one that is off; anything else fails.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from finops.pricing import (
    PriceBook,
    RateCard,
    TokenVector,
    load_price_file,
    parse_litellm_prices,
    prices_import,
    rules_for,
    token_cost,
)
from tests.conftest import SHARED_PRICE_FILE

peer = pytest.importorskip("tests.peer_litellm")

SEED = 20260704
# Vendors and how many of their models the sample takes (besides the models taken for
# a pricing feature). LiteLLM's cost code has a branch for most of them.
VENDOR_QUOTAS: dict[str, int] = {
    "openai": 30,
    "azure": 25,
    "anthropic": 12,
    "gemini": 15,
    "vertex_ai-language-models": 12,
    "vertex_ai-anthropic_models": 12,
    "bedrock": 25,
    "bedrock_converse": 25,
    "mistral": 15,
    "xai": 15,
    "deepseek": 8,
    "fireworks_ai": 20,
    "dashscope": 15,
}
FEATURE_QUOTA = 8
VECTORS_PER_MODEL = 6
IMPORTED_FROM = datetime(2020, 1, 1, tzinfo=UTC)
# Instants for the off-peak windows of DeepSeek's rows (weekdays 00:00-01:00,
# 04:00-06:00 and 10:00-24:00 UTC, all of Saturday and Sunday): 2026-03-04 is a Wednesday.
INSTANTS = (
    datetime(2026, 3, 4, 0, 30, tzinfo=UTC),  # off-peak
    datetime(2026, 3, 4, 3, 0, tzinfo=UTC),  # peak
    datetime(2026, 3, 4, 8, 0, tzinfo=UTC),  # peak
    datetime(2026, 3, 4, 9, 59, tzinfo=UTC),  # peak, the last minute
    datetime(2026, 3, 4, 10, 0, tzinfo=UTC),  # off-peak, the first minute
    datetime(2026, 3, 7, 8, 0, tzinfo=UTC),  # Saturday: off-peak all day
)

# Providers whose vendor sells a batch tier finops knows the price of (a rule of
# finops.pricing.rules). Batch elsewhere (class c) is left out of the sample: LiteLLM
# halves every rate of any model, finops keeps the standard rate where no rule or row
# states a batch price, and which of the two the vendor bills (if it sells batch at all)
# is not in the map.
BATCH_RULE_PROVIDERS = frozenset(
    {"openai", "azure", "anthropic", "gemini", "bedrock", "bedrock_converse", "mistral"}
    | {"vertex_ai-language-models", "vertex_ai-anthropic_models"}
)
# Providers whose LiteLLM cost branch takes no service tier (it prices every call at
# the standard rates).
TIERLESS_IN_LITELLM = frozenset({"fireworks_ai", "deepseek", "xai", "dashscope"})


# --- The sample ---------------------------------------------------------------------------


# The pricing features the sample must cover, by the key that marks them in an entry.
FEATURE_MARKERS: dict[str, str] = {
    "above_200k": "_above_200k_tokens",
    "above_272k": "_above_272k_tokens",
    "priority": "_priority",
    "flex": "_flex",
    "batches": "_batches",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
    "off_peak": "off_peak_pricing",
    "tiered": "tiered_pricing",
}
FEATURES = tuple(FEATURE_MARKERS)


def _features(entry: Mapping[str, Any]) -> set[str]:
    keys = " ".join(entry)
    return {feature for feature, marker in FEATURE_MARKERS.items() if marker in keys}


@dataclass(frozen=True)
class Sample:
    models: list[str]
    providers: dict[str, str]
    left_out: dict[str, str] = field(default_factory=dict)
    # Models of each feature LiteLLM can price under their own name (the sample takes
    # FEATURE_QUOTA of them, or all when there are fewer).
    available: Counter[str] = field(default_factory=Counter)


def sample_models(data: Mapping[str, Any]) -> Sample:
    """The seeded sample: each vendor's quota, then models with each pricing feature."""
    parsed = parse_litellm_prices(data)
    rng = random.Random(SEED)
    eligible: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name, price in sorted(parsed.prices.items()):
        provider = price.fields["provider"]
        if price.fields["mode"] != "chat" or provider not in VENDOR_QUOTAS:
            continue
        if not peer.resolves_to_itself(name, provider):
            left_out[name] = "LiteLLM prices this name from another entry"
            continue
        eligible[name] = provider
    chosen: set[str] = set()
    for vendor, quota in VENDOR_QUOTAS.items():
        names = sorted(n for n, p in eligible.items() if p == vendor)
        chosen.update(rng.sample(names, min(quota, len(names))))
    available: Counter[str] = Counter()
    for feature in FEATURES:
        names = sorted(n for n in eligible if feature in _features(data[n]))
        available[feature] = len(names)
        chosen.update(rng.sample(names, min(FEATURE_QUOTA, len(names))))
    models = sorted(chosen)
    return Sample(models, {n: eligible[n] for n in models}, left_out, available)


def service_tiers(name: str, provider: str, entry: Mapping[str, Any]) -> list[str]:
    """The tiers the vendor sells for the model: standard; batch where finops has the
    vendor's batch rule; flex and priority where the row or the vendor's rule prices them."""
    rules = rules_for(provider, name)
    tiers = ["standard"]
    if provider in BATCH_RULE_PROVIDERS and peer.batch_resolves_to_itself(name, provider):
        tiers.append("batch")
    keys = " ".join(entry)
    if "flex" in rules.tiers or "_flex" in keys:
        tiers.append("flex")
    if "_priority" in keys:
        tiers.append("priority")
    return tiers


def token_vectors(rng: random.Random, thresholds: list[int], count: int) -> list[TokenVector]:
    """Random calls: prompts just below, at and above each long-context threshold or
    tiered range, small prompts and empty ones; cache reads, 5 min and 1 h cache writes,
    reasoning, each present or not."""
    sizes: list[int] = [rng.randint(1, 30_000), rng.randint(1, 2_000)]
    for threshold in thresholds:
        sizes += [threshold - 1, threshold, threshold + 1, threshold + rng.randint(2, 150_000)]
    vectors = []
    for i in range(count):
        prompt = 0 if i == count - 1 and rng.random() < 0.3 else rng.choice(sizes)
        cached = rng.choice([0, rng.randint(0, prompt)])
        written = rng.choice([0, rng.randint(0, prompt - cached)])
        written_1h = rng.choice([0, written, rng.randint(0, written)])
        output = rng.randint(0, 20_000)
        reasoning = rng.choice([0, rng.randint(0, output)])
        vectors.append(
            TokenVector(
                input=prompt,
                output=output,
                cached_input=cached,
                cache_write=written,
                cache_write_1h=written_1h,
                reasoning=reasoning,
            )
        )
    return vectors


# --- The divergence classes ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    model: str
    provider: str
    entry: Mapping[str, Any]
    card: RateCard
    tokens: TokenVector
    service_tier: str
    at: datetime

    def has(self, key: str) -> bool:
        return self.entry.get(key) is not None

    @property
    def above_tokens(self) -> int:
        return self.card.rate_class(
            tokens=self.tokens, service_tier=self.service_tier, at=self.at
        ).above_tokens

    @property
    def anthropic_kinds(self) -> bool:
        return "cache_write_1h" in rules_for(self.provider, self.model).kinds


@dataclass(frozen=True)
class Divergence:
    """A known way LiteLLM's cost departs from the vendor's rule (finops follows the rule).
    `litellm_is`: whether LiteLLM's cost is "lower" or "higher" than the rule's when this
    class alone applies. `neutral`: the same call without what triggers the class (where
    there is such a call), which must agree again."""

    name: str
    applies: Callable[[Case], bool]
    litellm_is: str
    neutral: Callable[[TokenVector], TokenVector] | None = None


def _uncached(tokens: TokenVector) -> TokenVector:
    return replace(tokens, cached_input=0)


def _unwritten(tokens: TokenVector) -> TokenVector:
    return replace(tokens, cache_write=0, cache_write_1h=0)


def _five_minute(tokens: TokenVector) -> TokenVector:
    return replace(tokens, cache_write_1h=0)


def _batch_read_as_batch_input(case: Case) -> bool:
    # LiteLLM (`_batch_prompt_cost`): a row with `input_cost_per_token_batches` but no
    # `cache_read_input_token_cost_batches` bills cache reads as batch input. The vendors
    # bill batch as half of every standard rate, the cache read rate included (OpenAI
    # Batch API: 50% off; Anthropic: the batch discount stacks with the cache multipliers;
    # Gemini and Vertex batch: 50% of the standard rates, cached tokens at their cached
    # rate). For OpenAI's gpt-4o: $0.625/M, not LiteLLM's $1.25/M.
    return (
        case.service_tier == "batch"
        and case.tokens.cached_input > 0
        and case.has("input_cost_per_token_batches")
        and not case.has("cache_read_input_token_cost_batches")
    )


def _batch_write_as_batch_input(case: Case) -> bool:
    # The same for cache writes without `cache_creation_input_token_cost_batches`: LiteLLM
    # bills them at the batch input rate, the vendor (Anthropic) at half the 1.25x write rate.
    return (
        case.service_tier == "batch"
        and case.tokens.cache_write > 0
        and case.has("input_cost_per_token_batches")
        and not case.has("cache_creation_input_token_cost_batches")
        and case.has("cache_creation_input_token_cost")
    )


def _batch_read_free(case: Case) -> bool:
    # LiteLLM (`batch_cost_calculator`, no batch rates): cache reads at half
    # `cache_read_input_token_cost`, and at 0 when the row states none. The vendor
    # bills cached tokens at least at its cache read rate, here half of the rule's
    # (0.1x input for Anthropic's models, else the input rate: no caching discount).
    return (
        case.service_tier == "batch"
        and case.tokens.cached_input > 0
        and not case.has("input_cost_per_token_batches")
        and not case.has("cache_read_input_token_cost")
    )


def _batch_above_threshold(case: Case) -> bool:
    # LiteLLM (`get_batch_cost_rates`) takes a long-context batch rate only from an
    # `..._above_<N>k_tokens_batches` key; without one it bills a long prompt at the flat
    # batch rate. The vendors bill batch as half of the rate the prompt would have in the
    # standard tier: Gemini 2.5 Pro above 200k, $1.25/M input in batch (half of $2.50),
    # not $0.625/M; the same for Claude's 1M context on Bedrock and Vertex and GPT-5.x
    # above 272k.
    return (
        case.service_tier == "batch"
        and case.above_tokens > 0
        and not case.has(f"input_cost_per_token_above_{case.above_tokens // 1000}k_tokens_batches")
    )


def _one_hour_write_at_five_minute_rate(case: Case) -> bool:
    # Anthropic's models (on Anthropic, Bedrock and Vertex) without
    # `cache_creation_input_token_cost_above_1hr`: LiteLLM bills a 1 h write at the 5 min
    # write rate; Anthropic's price list bills 1 h writes at 2x the input rate (5 min
    # writes at 1.25x), https://docs.anthropic.com/en/docs/about-claude/pricing.
    return (
        case.tokens.cache_write_1h > 0
        and case.anthropic_kinds
        and not case.has("cache_creation_input_token_cost_above_1hr")
    )


def _batch_one_hour_write(case: Case) -> bool:
    # LiteLLM's batch calculator has no 1 h write: every write is billed at the (batch)
    # 5 min rate. Anthropic's batch discount applies to the 1 h write rate as to every
    # other: half of $6/M for Claude Sonnet 4.5, not half of $3.75/M.
    return case.service_tier == "batch" and case.tokens.cache_write_1h > 0


def _anthropic_read_without_cache_price(case: Case) -> bool:
    # Anthropic models whose row states no cache read price (Claude 3.5 Haiku and 3.5
    # Sonnet on Vertex AI, Claude 2 and Instant on Bedrock): LiteLLM bills a cache read
    # as input, Anthropic's rule is 0.1x input.
    return (
        case.tokens.cached_input > 0
        and case.anthropic_kinds
        and not case.has("cache_read_input_token_cost")
        and case.service_tier != "batch"
    )


def _anthropic_write_without_cache_price(case: Case) -> bool:
    # The same for a 5 min cache write: LiteLLM bills it as input, Anthropic at 1.25x.
    return (
        case.tokens.cache_write > case.tokens.cache_write_1h
        and case.anthropic_kinds
        and not case.has("cache_creation_input_token_cost")
    )


def _openai_flex_without_flex_price(case: Case) -> bool:
    # OpenAI models whose row states no `_flex` rate: LiteLLM bills flex at the standard
    # rates, OpenAI's Flex processing is priced at the Batch API's rates, half of the
    # standard ones (https://platform.openai.com/docs/guides/flex-processing). OpenAI
    # offers flex on some models only; a model without it refuses the tier.
    return (
        case.service_tier == "flex"
        and "flex" in rules_for(case.provider, case.model).tiers
        and not case.has("input_cost_per_token_flex")
    )


def _tier_ignored_by_litellm(case: Case) -> bool:
    # LiteLLM's Fireworks branch (`fireworks_ai/cost_calculator.py`) takes no service
    # tier: a priority call is billed at the standard rates, though the row states the
    # vendor's priority rates (`input_cost_per_token_priority`, ...).
    return case.service_tier != "standard" and case.provider in TIERLESS_IN_LITELLM


def _tiered_without_input(case: Case) -> bool:
    # LiteLLM (`select_tier_for_input`) picks no tiered_pricing range for a call of 0
    # input tokens and falls back to the flat rates, which a tiered row does not state:
    # the output is free. Alibaba Model Studio's first range is "0 < tokens <= 256k"
    # and every token is billed at the range's prices; finops bills the output of an
    # empty prompt at the first range's rate.
    return case.tokens.input == 0 and case.has("tiered_pricing")


DIVERGENCES: tuple[Divergence, ...] = (
    Divergence("a1. batch cache read billed as batch input", _batch_read_as_batch_input,
               "higher", _uncached),
    Divergence("a2. batch cache write billed as batch input", _batch_write_as_batch_input,
               "lower", _unwritten),
    Divergence("a3. batch cache read free (no cache read price)", _batch_read_free,
               "lower", _uncached),
    Divergence("b. batch above a long-context threshold at the flat batch rate",
               _batch_above_threshold, "lower"),
    Divergence("d. 1 h cache write at the 5 min rate (Anthropic, no 1 h price)",
               _one_hour_write_at_five_minute_rate, "lower", _five_minute),
    Divergence("e. batch 1 h cache write at the 5 min batch rate", _batch_one_hour_write,
               "lower", _five_minute),
    Divergence("f. tiered pricing, no input: no range, output free", _tiered_without_input,
               "lower"),
    Divergence("g1. Anthropic cache read at the input rate (no cache read price)",
               _anthropic_read_without_cache_price, "higher", _uncached),
    Divergence("g2. Anthropic cache write at the input rate (no cache write price)",
               _anthropic_write_without_cache_price, "lower", _unwritten),
    Divergence("h. OpenAI flex at the standard rate (no flex price)",
               _openai_flex_without_flex_price, "higher"),
    Divergence("i. service tier ignored by LiteLLM's provider branch (Fireworks)",
               _tier_ignored_by_litellm, "lower"),
)  # fmt: skip


# --- The comparison -----------------------------------------------------------------------


@dataclass
class Outcome:
    compared: int = 0
    agreed: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    wrong_direction: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)


def _costs(case: Case, tokens: TokenVector) -> tuple[Decimal, float]:
    ours = token_cost(tokens=tokens, price=case.card, service_tier=case.service_tier, at=case.at)
    theirs = peer.litellm_cost(
        model=case.model,
        provider=case.provider,
        tokens=tokens,
        service_tier=case.service_tier,
        at=case.at,
    )
    return ours, theirs


def _describe(case: Case, ours: Decimal, theirs: float) -> str:
    return (
        f"{case.model} ({case.provider}) {case.service_tier} at {case.at:%a %H:%M} "
        f"{case.tokens}: finops {ours}, LiteLLM {theirs!r}"
    )


def compare(case: Case, outcome: Outcome) -> None:
    outcome.compared += 1
    ours, theirs = _costs(case, case.tokens)
    if peer.agrees(ours, theirs):
        outcome.agreed += 1
        return
    classes = [d for d in DIVERGENCES if d.applies(case)]
    if not classes:
        outcome.undocumented.append(_describe(case, ours, theirs))
        return
    outcome.by_class.update(d.name for d in classes)
    if len(classes) == 1 and classes[0].litellm_is != (
        "lower" if theirs < float(ours) else "higher"
    ):
        outcome.wrong_direction.append(f"{classes[0].name}: {_describe(case, ours, theirs)}")
    # Without what triggers the classes the call must agree again: a class never hides
    # another difference in the same call. (Not checked where a class has no such call.)
    neutral = case
    while classes and all(d.neutral for d in classes):
        tokens = neutral.tokens
        for divergence in classes:
            tokens = divergence.neutral(tokens)  # type: ignore[misc]
        neutral = replace(neutral, tokens=tokens)
        classes = [d for d in DIVERGENCES if d.applies(neutral)]
    if neutral is not case and not classes:
        ours, theirs = _costs(neutral, neutral.tokens)
        if not peer.agrees(ours, theirs):
            outcome.undocumented.append(
                "still without what triggers its classes: " + _describe(neutral, ours, theirs)
            )


@pytest.fixture(scope="module")
def price_map() -> Mapping[str, Any]:
    # conftest's `litellm_price_file` is per test; the map is read once per module.
    if not SHARED_PRICE_FILE.exists():
        pytest.skip("LiteLLM's price map is not beside the repository (../shared/data/)")
    return load_price_file(SHARED_PRICE_FILE)


@pytest.fixture(scope="module")
def sample(price_map: Mapping[str, Any]) -> Sample:
    return sample_models(price_map)


def test_litellm_reads_the_same_price_map(price_map: Mapping[str, Any]) -> None:
    assert peer.reads_the_same_map(SHARED_PRICE_FILE)


def test_the_sample_covers_every_vendor_and_pricing_feature(
    sample: Sample, price_map: Mapping[str, Any]
) -> None:
    assert 250 <= len(sample.models) <= 400
    vendors = Counter(sample.providers.values())
    assert set(vendors) == set(VENDOR_QUOTAS)
    features = Counter(f for name in sample.models for f in _features(price_map[name]))
    assert all(features[f] >= min(FEATURE_QUOTA, sample.available[f]) > 0 for f in FEATURES)


@pytest.mark.django_db
def test_finops_prices_like_litellm_except_the_documented_divergences(
    sample: Sample, price_map: Mapping[str, Any]
) -> None:
    prices_import(data=price_map, effective_from=IMPORTED_FROM)
    book = PriceBook.for_models(sample.models)
    rng = random.Random(SEED)
    outcome = Outcome()
    tiers_seen: Counter[str] = Counter()
    for name in sample.models:
        provider = sample.providers[name]
        entry = price_map[name]
        card = book.find(model=name, provider="", at=INSTANTS[0])
        assert card is not None and card.price.provider == provider
        thresholds = sorted({b for b in card.bands if b})
        for tokens in token_vectors(rng, thresholds, VECTORS_PER_MODEL):
            at = rng.choice(INSTANTS)
            for tier in service_tiers(name, provider, entry):
                tiers_seen[tier] += 1
                compare(Case(name, provider, entry, card, tokens, tier, at), outcome)

    # The figures (pytest -s shows them): models, comparisons, agreements, each class.
    print(f"peer: {len(sample.models)} models, {outcome.compared} comparisons, "
          f"{outcome.agreed} agree; classes {dict(sorted(outcome.by_class.items()))}; "
          f"tiers {dict(tiers_seen)}")  # fmt: skip
    # Every class is met, in its direction, and stays a small part of the comparisons.
    assert set(outcome.by_class) == {d.name for d in DIVERGENCES}, outcome.by_class
    assert not outcome.wrong_direction, "\n".join(outcome.wrong_direction[:25])
    for name, count in outcome.by_class.items():
        assert count <= 0.06 * outcome.compared, (name, count)
    assert outcome.agreed >= 0.75 * outcome.compared
    assert min(tiers_seen.values()) >= 100, tiers_seen
    report = "\n".join(outcome.undocumented[:25])
    assert not outcome.undocumented, (
        f"{len(outcome.undocumented)} undocumented disagreements of {outcome.compared}:\n{report}"
    )
