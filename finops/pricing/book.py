"""Finding the price row of a call: by provider and model, effective-dated."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..models import ModelPrice
from .cost import RateCard

# Provider names as OpenTelemetry (current and deprecated `gen_ai.system` values) and
# common clients write them, to the names of LiteLLM's price map.
PROVIDER_ALIASES: dict[str, tuple[str, ...]] = {
    "azure.ai.openai": ("azure",),
    "az.ai.openai": ("azure",),
    "azure_openai": ("azure",),
    "azure.ai.inference": ("azure_ai",),
    "az.ai.inference": ("azure_ai",),
    "aws.bedrock": ("bedrock", "bedrock_converse"),
    "amazon_bedrock": ("bedrock", "bedrock_converse"),
    "gcp.gemini": ("gemini",),
    "google": ("gemini",),
    "google_genai": ("gemini",),
    "gcp.vertex_ai": ("vertex_ai",),
    "vertex": ("vertex_ai",),
    "gcp.gen_ai": ("gemini", "vertex_ai"),
    "mistral_ai": ("mistral",),
    "x_ai": ("xai",),
    "ibm.watsonx.ai": ("watsonx",),
    "fireworks": ("fireworks_ai",),
    "together": ("together_ai",),
}


def provider_names(provider: str) -> tuple[str, ...]:
    """The price map's names for a provider as an event writes it."""
    if not provider:
        return ()
    key = provider.strip().lower()
    return PROVIDER_ALIASES.get(key, (key,))


def candidate_names(model: str, provider: str, region: str = "") -> list[str]:
    """Price-row names to try, in order: `provider/region/model` under each of the
    provider's names (a region's own price, as the price map names Azure's data zones
    and Bedrock's regions), then `provider/model`, then the model name as given."""
    region = region.strip().lower()
    # A region names a place, never a path through the map's names.
    regional = [f"{name}/{region}/{model}" for name in provider_names(provider)]
    regional = regional if region and "/" not in region else []
    names = [*regional, *(f"{name}/{model}" for name in provider_names(provider))]
    return [*[n for n in names if n != model], model]


class PriceBook:
    """The price rows (and their rates) of a set of models, loaded once, for pricing
    many events."""

    def __init__(self, rows: Iterable[ModelPrice]) -> None:
        self._rows: dict[str, list[ModelPrice]] = {}
        for row in rows:
            self._rows.setdefault(row.model, []).append(row)
        for history in self._rows.values():
            history.sort(key=lambda r: r.effective_from, reverse=True)

    @classmethod
    def for_models(
        cls, models: Iterable[str], providers: Iterable[str] = (), regions: Iterable[str] = ()
    ) -> PriceBook:
        models = set(models)
        providers = {p for p in providers if p}
        regions = {r for r in regions if r} | {""}
        names = set(models)
        for model in models:
            for provider in providers:
                for region in regions:
                    names.update(candidate_names(model, provider, region))
        return cls(ModelPrice.objects.filter(model__in=names).prefetch_related("rates"))

    def has(self, *, model: str, provider: str, region: str = "") -> bool:
        """Whether the model has any price row, in force or still to come."""
        return any(name in self._rows for name in candidate_names(model, provider, region))

    def find(self, *, model: str, provider: str, at: datetime, region: str = "") -> RateCard | None:
        """The card of the row in force at `at`: the region's own row first, then
        `provider/model`, then `model`."""
        for name in candidate_names(model, provider, region):
            for row in self._rows.get(name, ()):
                if row.effective_from <= at:
                    return RateCard.of(row)
        return None
