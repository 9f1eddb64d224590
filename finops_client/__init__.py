"""finops client: report LLM calls to a finops service and ask its guard.

Depends on httpx only.

    from finops_client import FinOpsClient, track_llm_cost, usage_context

    client = FinOpsClient("http://127.0.0.1:8000", "fo_...")

    @track_llm_cost(client, feature="document_summarization", prompt_template="summarize-v3")
    def summarize(text):
        return openai_client.chat.completions.create(model="gpt-4o", messages=[...])

    with usage_context(tenant="acme", user="u-42", session="s-1"):
        summarize("...")

Events are queued and sent in batches by a background thread (on size, on an interval
and at exit), retried with backoff on 5xx answers and connection errors. What could not
be delivered is counted in `client.undelivered` and logged, never dropped silently. The
sender and `guard()` share one HTTP connection pool, kept alive between calls.
"""

from __future__ import annotations

from .client import FinOpsClient, track_llm_cost, usage_context
from .usage import usage_from_response

__all__ = ["FinOpsClient", "track_llm_cost", "usage_context", "usage_from_response"]
