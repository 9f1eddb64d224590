"""What a rollup row is keyed by and adds up, in the order every fold and statement lists
them."""

from __future__ import annotations

from finops.pricing import TOKEN_COLUMNS

# The metric columns count what the events report: retrieval chunks, reranker runs,
# outcomes, the cost of calls with an outcome or in a session, sessions (each once per
# tenant and UTC day), prompt hashes already sent that day, escalated calls, and the calls
# that report `cache_hit` (the application's cache answered them), hit, and their cost.
METRIC_SUMS = (
    "chunks_retrieved", "chunks_used", "reranked_calls", "reranker_changed", "outcome_calls",
    "correct_calls", "outcome_cost", "session_cost", "sessions", "hashed_calls", "repeat_calls",
    "escalated_calls", "cache_known_calls", "cache_hit_calls", "cache_hit_cost",
)  # fmt: skip
SUMS = ("calls", "priced_calls", *TOKEN_COLUMNS, "cost", *METRIC_SUMS)
# The slices both rollups share after their own keys: where the calls ran, the rate class
# that priced them (the effective service tier, the long-context threshold, off-peak) and
# the value of the reported tag (`FINOPS_REPORT_TAG_KEY`).
SLICES = ("provider", "region", "service_tier", "above_tokens", "off_peak", "tag")
USAGE_KEY = ("grain", "period_start", "tenant_id", "feature", "model", "prompt_template",
             "routing_tier", *SLICES)  # fmt: skip
FEATURE_KEY = ("grain", "period_start", "feature", "model", "routing_tier", "tenant_tier",
               *SLICES)  # fmt: skip
# A tag value is kept to the column's length (PostgreSQL's `left(..., 200)`, in characters).
TAG_LENGTH = 200
