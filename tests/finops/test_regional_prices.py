"""Calls in a region with a price of its own, against LiteLLM on the real price map: every
regional chat entry of Azure's data zones and Bedrock's regions that LiteLLM prices from
itself, one call each, priced by finops from the event's model, provider and region."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from finops.models import BEGINNING_OF_TIME
from finops.pricing import PriceBook, TokenVector, load_price_file, prices_import, usage_priced
from tests import peer_litellm as peer
from tests.conftest import SHARED_PRICE_FILE

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 3, 12, tzinfo=UTC)
# No cache reads: old Bedrock models have no cache read rate, where finops applies the
# vendor's rule and LiteLLM the input rate (divergence g1 of test_peer_litellm);
# what is checked here is that the region's own row prices the call.
TOKENS = TokenVector(input=120_000, output=3_000)


def _regional(price_map: Mapping[str, Any]) -> list[str]:
    """`provider/region/model` chat entries priced per token (no commitments, no `*`)."""
    return sorted(
        key for key, entry in price_map.items()
        if key.count("/") == 2 and key.split("/")[0] in ("azure", "bedrock")
        and "*" not in key and "commitment" not in key and entry.get("mode") == "chat"
        and "input_cost_per_token" in entry
    )  # fmt: skip


class _Call:
    def __init__(self, model: str) -> None:
        self.input_tokens, self.output_tokens = TOKENS.input, TOKENS.output
        self.cached_input_tokens, self.cache_write_tokens = 0, 0
        self.reasoning_tokens, self.timestamp, self.model = 0, AT, model


def test_a_regional_call_costs_what_litellm_charges_for_that_region() -> None:
    if not SHARED_PRICE_FILE.exists():
        pytest.skip("LiteLLM's price map is not beside the repository (../shared/data/)")
    price_map = load_price_file(SHARED_PRICE_FILE)
    prices_import(data=price_map, effective_from=BEGINNING_OF_TIME)
    keys = [k for k in _regional(price_map) if peer.resolves_to_itself(k, k.split("/")[0])]
    assert len(keys) >= 100  # Azure's eu and us zones, Bedrock's regions
    names = {k.split("/", 2)[2] for k in keys}
    book = PriceBook.for_models(names, {"azure", "bedrock"},
                                {k.split("/")[1] for k in keys})  # fmt: skip
    checked, disagree = 0, []
    for key in keys:
        provider, region, model = key.split("/", 2)
        card = book.find(model=model, provider=provider, at=AT, region=region)
        assert card is not None and card.price.model == key, key
        priced = usage_priced(usage=_Call(model), price=card)
        if priced is None:
            continue
        theirs = peer.litellm_cost(model=key, provider=provider, tokens=TOKENS,
                                   service_tier="standard", at=AT)  # fmt: skip
        checked += 1
        if not peer.agrees(priced.cost, theirs):
            disagree.append((key, str(priced.cost), theirs))
    assert checked >= 100
    assert not disagree, disagree[:10]
