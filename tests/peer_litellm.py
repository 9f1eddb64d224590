"""LiteLLM as a peer pricer: its cost of a call, read from the same local price map.

LiteLLM reads the price map it bundles (the same file as the shared one, which the peer
test checks), never the network: the environment says so before the first import.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402 - the environment above must come first
from litellm._internal_context import pinned_billing_time  # noqa: E402
from litellm.cost_calculator import batch_cost_calculator  # noqa: E402
from litellm.types.utils import (  # noqa: E402
    CacheCreationTokenDetails,
    PromptTokensDetailsWrapper,
    Usage,
)

from finops.pricing import TokenVector  # noqa: E402

STANDARD = "standard"
BATCH = "batch"


def litellm_provider(provider: str) -> str:
    """The provider a LiteLLM call names for a price row's `litellm_provider`: Vertex AI's
    sub-catalogues (`vertex_ai-language-models`, `vertex_ai-anthropic_models`) are all
    called as `vertex_ai`."""
    return "vertex_ai" if provider.startswith("vertex_ai") else provider


def _entry_key(model: str, provider: str) -> str | None:
    try:
        return litellm.get_model_info(model=model, custom_llm_provider=provider).get("key")
    except Exception:  # LiteLLM raises a bare Exception for a model it cannot map
        return None


def resolves_to_itself(model: str, provider: str) -> bool:
    """Whether LiteLLM prices `model` called through `provider` from the entry of that
    name (it tries `provider/model` first: `deepseek-chat` called through deepseek is
    priced from `deepseek/deepseek-chat`, another entry)."""
    return _entry_key(model, litellm_provider(provider)) == model


def batch_resolves_to_itself(model: str, provider: str) -> bool:
    """The same for the batch calculator, which routes the name again (it routes
    `azure/mistral-large-latest` to openai, where no entry has that name)."""
    _, routed, _, _ = litellm.get_llm_provider(
        model=model, custom_llm_provider=litellm_provider(provider)
    )
    return _entry_key(model, routed) == model


def usage_of(tokens: TokenVector) -> Usage:
    """LiteLLM's usage block for a token vector: prompt tokens are all input, cache reads
    and writes are parts of them, the 1 h writes a part of the writes."""
    write_split = (
        CacheCreationTokenDetails(
            ephemeral_5m_input_tokens=tokens.cache_write - tokens.cache_write_1h,
            ephemeral_1h_input_tokens=tokens.cache_write_1h,
        )
        if tokens.cache_write
        else None
    )
    return Usage(
        prompt_tokens=tokens.input,
        completion_tokens=tokens.output,
        total_tokens=tokens.input + tokens.output,
        prompt_tokens_details=PromptTokensDetailsWrapper(
            cached_tokens=tokens.cached_input,
            cache_creation_tokens=tokens.cache_write,
            cache_creation_token_details=write_split,
        ),
        reasoning_tokens=tokens.reasoning or None,
    )


def litellm_cost(
    *, model: str, provider: str, tokens: TokenVector, service_tier: str, at: datetime
) -> float:
    """LiteLLM's cost of the call, priced at `at` (its off-peak windows read the pinned
    billing time): `cost_per_token` for the standard, flex and priority tiers,
    `batch_cost_calculator` for batch."""
    usage = usage_of(tokens)
    provider = litellm_provider(provider)
    with pinned_billing_time(at):
        if service_tier == BATCH:
            prompt, completion = batch_cost_calculator(
                usage=usage, model=model, custom_llm_provider=provider
            )
        else:
            prompt, completion = litellm.cost_per_token(
                model=model,
                custom_llm_provider=provider,
                usage_object=usage,
                service_tier=None if service_tier == STANDARD else service_tier,
            )
    return prompt + completion


def agrees(exact: Decimal, approximate: float) -> bool:
    """LiteLLM adds floats: equal to 1e-9 relative, or 1e-12 USD for tiny costs."""
    return math.isclose(float(exact), approximate, rel_tol=1e-9, abs_tol=1e-12)


def reads_the_same_map(path: Path) -> bool:
    """Whether LiteLLM's loaded map is the file at `path` (as floats, LiteLLM's own
    reading), every entry equal; LiteLLM takes its `fallback_generalizations` block out."""
    with open(path, "rb") as fh:
        data = json.load(fh)
    data.pop("fallback_generalizations", None)
    return litellm.model_cost == data
