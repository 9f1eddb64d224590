"""What a rollup row adds up, in the order every fold and statement lists it."""

from __future__ import annotations

from finops.pricing import TOKEN_COLUMNS

# The metric columns count what the events report: retrieval chunks, reranker runs,
# outcomes, the cost of calls with an outcome or in a session, sessions (each once per
# tenant and UTC day) and prompt hashes already sent that day.
METRIC_SUMS = (
    "chunks_retrieved", "chunks_used", "reranked_calls", "reranker_changed", "outcome_calls",
    "correct_calls", "outcome_cost", "session_cost", "sessions", "hashed_calls", "repeat_calls",
)  # fmt: skip
SUMS = ("calls", "priced_calls", *TOKEN_COLUMNS, "cost", *METRIC_SUMS)
USAGE_KEY = ("grain", "period_start", "tenant_id", "feature", "model", "prompt_template",
             "routing_tier")  # fmt: skip
FEATURE_KEY = ("grain", "period_start", "feature", "model", "routing_tier", "tenant_tier")
