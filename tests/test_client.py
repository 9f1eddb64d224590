"""The Python client against the live service: the decorator, the sender, the guard."""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from finops.services import apikey_create
from finops_client import FinOpsClient, track_llm_cost, usage_context
from ingestion.models import UsageEvent

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def openai_response(prompt: int, completion: int, cached: int = 0):
    return SimpleNamespace(
        model="gpt-4o-2024-08-06",
        usage=SimpleNamespace(prompt_tokens=prompt, completion_tokens=completion,
                              prompt_tokens_details=SimpleNamespace(cached_tokens=cached)),
    )  # fmt: skip


def test_the_decorator_reports_openai_and_anthropic_calls(live_server, acme) -> None:
    _, key = apikey_create(tenant=None, scopes=["ingest"], name="client")
    client = FinOpsClient(live_server.url, key, flush_interval=60)

    @track_llm_cost(client, feature="document_summarization", prompt_template="summarize-v3")
    def summarize(text: str):
        return openai_response(1200, 300, cached=200)

    @track_llm_cost(client, feature="chat_assistant")
    async def chat(text: str):
        return {"model": "claude-3-5-sonnet-20241022", "usage": {
            "input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 500,
            "cache_creation_input_tokens": 200}}  # fmt: skip

    with usage_context(tenant="acme", user="u-1", session="s-1"):
        summarize("a text")
        asyncio.run(chat("hello"))
    assert client.flush(timeout=10)
    client.close()
    assert (client.sent, client.undelivered) == (2, 0)
    gpt = UsageEvent.objects.get(model="gpt-4o-2024-08-06")
    assert (gpt.tenant.slug, gpt.user, gpt.session, gpt.prompt_template.key) == (
        "acme", "u-1", "s-1", "summarize-v3")  # fmt: skip
    assert gpt.cost == Decimal("0.00575")
    claude = UsageEvent.objects.get(model="claude-3-5-sonnet-20241022")
    # Anthropic counts cache tokens apart from input_tokens; the event's input holds all.
    assert (claude.input_tokens, claude.cached_input_tokens, claude.cache_write_tokens) == (
        1700, 500, 200)  # fmt: skip


def test_the_guard_through_the_client(live_server, acme) -> None:
    _, key = apikey_create(tenant=acme, scopes=["ingest"], name="client")
    client = FinOpsClient(live_server.url, key)
    answer = client.guard(None, "document_summarization", "gpt-4o-2024-08-06")
    assert answer["decision"] == "allow" and answer["error_type"] is None
    with pytest.raises(RuntimeError, match="404"):
        client.guard("globex", "document_summarization", "gpt-4o-2024-08-06")
    client.close()


class _Flaky(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.calls += 1  # type: ignore[attr-defined]
        if server.calls <= server.failures:  # type: ignore[attr-defined]
            self.send_response(503)
            self.end_headers()
            return
        results = [{"index": i, "status": "accepted"} for i in range(len(body["events"]))]
        data = json.dumps({"accepted": len(results), "results": results}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.calls, server.failures = 0, 2  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_the_sender_retries_503_and_counts_what_it_cannot_deliver(flaky) -> None:
    url = f"http://127.0.0.1:{flaky.server_port}"
    client = FinOpsClient(url, "fo_x_y", backoff=0.01, flush_interval=60)
    for i in range(3):
        client.record(tenant="acme", model="gpt-4o", input_tokens=i, output_tokens=1)
    assert client.flush(timeout=10)
    assert (flaky.calls, client.sent, client.undelivered) == (3, 3, 0)
    client.close()
    gone = FinOpsClient("http://127.0.0.1:9", "fo_x_y", backoff=0.01, max_retries=2,
                        flush_interval=60)  # fmt: skip
    gone.record(tenant="acme", model="gpt-4o", input_tokens=1, output_tokens=1)
    assert gone.flush(timeout=10)
    assert (gone.sent, gone.undelivered) == (0, 1)
    gone.close()
