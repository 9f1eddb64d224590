"""The vendors' pricing rules: what a call costs where the price map states no rate.

Each rule is a row of `VENDOR_RULES`, with the page that publishes it. The first rule
whose providers (LiteLLM's `litellm_provider` of the price row) and model match decides
each aspect it states; an aspect no rule states keeps the standard rate (a tier) or the
generic fallback of `RateCard` (a kind), and docs/pricing.md says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

HALF = Decimal("0.5")

_OPENAI = frozenset({"openai", "text-completion-openai", "azure", "azure_text"})
_ANTHROPIC_HOSTS = frozenset(
    {"anthropic", "vertex_ai-anthropic_models", "bedrock", "bedrock_converse", "bedrock_mantle"}
)
_GOOGLE = frozenset({"gemini", "vertex_ai", "vertex_ai-language-models"})
_BEDROCK = frozenset({"bedrock", "bedrock_converse", "bedrock_mantle"})


@dataclass(frozen=True, slots=True)
class VendorRule:
    """One published rule. `tiers`: a service tier's rate as a multiple of the standard
    rate of the same kind and prompt size. `kinds`: a token kind's rate as a multiple of
    another kind's rate, where the row states none."""

    name: str
    source: str
    providers: frozenset[str] = frozenset()
    provider_prefixes: tuple[str, ...] = ()
    model_contains: str = ""
    tiers: Mapping[str, Decimal] = field(default_factory=dict)
    kinds: Mapping[str, tuple[str, Decimal]] = field(default_factory=dict)
    inclusive_threshold: bool | None = None

    def matches(self, provider: str, model: str) -> bool:
        by_prefix = bool(self.provider_prefixes) and provider.startswith(self.provider_prefixes)
        if provider not in self.providers and not by_prefix:
            return False
        return not self.model_contains or self.model_contains in model.lower()


VENDOR_RULES: tuple[VendorRule, ...] = (
    VendorRule(
        name="Anthropic prompt caching and batch",
        source="https://docs.anthropic.com/en/docs/about-claude/pricing",
        providers=_ANTHROPIC_HOSTS,
        model_contains="claude",
        tiers={"batch": HALF},
        kinds={
            "cache_write": ("input", Decimal("1.25")),
            "cache_write_1h": ("input", Decimal(2)),
            "cached_input": ("input", Decimal("0.1")),
        },
    ),
    VendorRule(
        name="OpenAI Batch API and Flex processing",
        source="https://platform.openai.com/docs/guides/batch "
        "https://platform.openai.com/docs/guides/flex-processing",
        providers=frozenset({"openai", "text-completion-openai"}),
        tiers={"batch": HALF, "flex": HALF},
    ),
    VendorRule(
        name="Azure OpenAI Global Batch",
        source="https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/batch",
        providers=frozenset({"azure", "azure_text"}),
        tiers={"batch": HALF},
    ),
    VendorRule(
        name="Gemini API and Vertex AI batch",
        source="https://ai.google.dev/gemini-api/docs/batch-mode "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-gemini",
        providers=_GOOGLE,
        provider_prefixes=("vertex_ai-",),
        tiers={"batch": HALF},
    ),
    VendorRule(
        name="Amazon Bedrock batch inference",
        source="https://aws.amazon.com/bedrock/pricing/",
        providers=_BEDROCK,
        tiers={"batch": HALF},
    ),
    VendorRule(
        name="Mistral Batch API",
        source="https://docs.mistral.ai/capabilities/batch/",
        providers=frozenset({"mistral"}),
        tiers={"batch": HALF},
    ),
    VendorRule(
        name="Fireworks prompt caching",
        source="https://docs.fireworks.ai/guides/prompt-caching",
        providers=frozenset({"fireworks_ai"}),
        kinds={"cached_input": ("input", HALF)},
    ),
    VendorRule(
        name="xAI long-context pricing",
        source="https://docs.x.ai/docs/models",
        providers=frozenset({"xai"}),
        inclusive_threshold=True,
    ),
)


@dataclass(frozen=True, slots=True)
class Rules:
    """The rules in force for one (provider, model): the first matching rule per aspect."""

    tiers: Mapping[str, tuple[Decimal, str]]
    kinds: Mapping[str, tuple[str, Decimal, str]]
    inclusive_threshold: bool


@cache
def rules_for(provider: str, model: str) -> Rules:
    tiers: dict[str, tuple[Decimal, str]] = {}
    kinds: dict[str, tuple[str, Decimal, str]] = {}
    inclusive: bool | None = None
    for rule in VENDOR_RULES:
        if not rule.matches(provider, model):
            continue
        for tier, multiple in rule.tiers.items():
            tiers.setdefault(tier, (multiple, rule.name))
        for kind, (base, multiple) in rule.kinds.items():
            kinds.setdefault(kind, (base, multiple, rule.name))
        if inclusive is None and rule.inclusive_threshold is not None:
            inclusive = rule.inclusive_threshold
    return Rules(tiers=tiers, kinds=kinds, inclusive_threshold=bool(inclusive))


# --- Rules frozen on a price row --------------------------------------------------------
#
# A price row keeps the rules in force when it was created (`ModelPrice.rules`), so that
# a row that has priced events never changes its rates: a change of this table reaches
# a model through a new row (an import sees the row's rules differ), as any price change.
# Rows from before tiers existed are marked `legacy`: they keep the pricing they billed.

LEGACY = {"legacy": True}


def rules_json(rules: Rules) -> dict:
    """A row's frozen rules, as stored."""
    return {
        "tiers": {tier: [str(multiple), name] for tier, (multiple, name) in rules.tiers.items()},
        "kinds": {
            kind: [base, str(multiple), name]
            for kind, (base, multiple, name) in rules.kinds.items()
        },
        "inclusive_threshold": rules.inclusive_threshold,
    }


def rules_from_json(data: dict) -> Rules:
    return Rules(
        tiers={tier: (Decimal(m), name) for tier, (m, name) in data.get("tiers", {}).items()},
        kinds={
            kind: (base, Decimal(m), name)
            for kind, (base, m, name) in data.get("kinds", {}).items()
        },
        inclusive_threshold=bool(data.get("inclusive_threshold")),
    )


def frozen_rules(provider: str, model: str) -> dict:
    """The rules a new row of this provider and model freezes."""
    return rules_json(rules_for(provider, model))
