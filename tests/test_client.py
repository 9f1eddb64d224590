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
from tests import test_client_usage as shapes

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


VENDOR_CALLS = [
    # (feature, response as the vendor returns it, fixed decorator fields)
    ("openai_chat", shapes.OPENAI_CHAT, {}),
    ("openai_responses", shapes.OPENAI_RESPONSES, {}),
    ("anthropic", shapes.ANTHROPIC_MESSAGE, {}),
    ("anthropic_batch", shapes.ANTHROPIC_BATCH_RESULT, {}),
    ("gemini", shapes.GEMINI_REST, {"provider": "gemini"}),
    ("bedrock", shapes.BEDROCK_CONVERSE, {"model": "anthropic.claude-sonnet-4-5-20250929-v1:0"}),
    ("xai", shapes.XAI_CHAT, {}),
    ("mistral", shapes.MISTRAL_CHAT, {}),
]

STORED = ("model", "provider", "input_tokens", "output_tokens", "cached_input_tokens",
          "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "service_tier",
          "batch")  # fmt: skip


def test_each_vendor_shape_is_stored_as_the_same_event(live_server, acme) -> None:
    _, key = apikey_create(tenant=acme, scopes=["ingest"], name="client")
    client = FinOpsClient(live_server.url, key, flush_interval=60)
    for feature, response, fixed in VENDOR_CALLS:
        track_llm_cost(client, feature=feature, **fixed)(lambda r=response: r)()
    assert client.flush(timeout=10)
    client.close()
    assert (client.sent, client.undelivered) == (len(VENDOR_CALLS), 0)
    stored = {
        e["feature__key"]: tuple(e[f] for f in STORED)
        for e in UsageEvent.objects.values("feature__key", *STORED)
    }
    assert stored == {
        "openai_chat": ("gpt-4o-2024-08-06", "", 1200, 300, 200, 0, 0, 0, "standard", False),
        "openai_responses": ("o3-2025-04-16", "", 1200, 900, 200, 0, 0, 640, "flex", False),
        "anthropic": ("claude-sonnet-4-5-20250929", "anthropic", 13050, 400, 10000, 3000, 2000,
                      0, "standard", False),
        "anthropic_batch": ("claude-sonnet-4-5-20250929", "anthropic", 11, 36, 0, 0, 0, 0,
                            "batch", True),
        "gemini": ("gemini-2.5-flash", "gemini", 5000, 1500, 4000, 0, 0, 1200, "standard",
                   False),
        "bedrock": ("anthropic.claude-sonnet-4-5-20250929-v1:0", "bedrock", 3120, 300, 2000,
                    1000, 1000, 0, "priority", False),
        "xai": ("grok-3-mini", "xai", 32, 103, 6, 0, 0, 94, "standard", False),
        "mistral": ("mistral-small-latest", "mistral", 16, 34, 0, 0, 0, 0, "standard", False),
    }  # fmt: skip
    costs = dict(UsageEvent.objects.values_list("feature__key", "cost"))
    # 1000 uncached at 2.50, 200 cached at 1.25, 300 output at 10 per 1M.
    assert costs["openai_chat"] == Decimal("0.00575")
    # Priced as mistral/mistral-small-latest (0.15 in, 0.60 out per 1M): the provider the
    # shape named found the price.
    assert costs["mistral"] == Decimal("0.0000228")


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


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open between requests

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/v1/guard":
            answer = {"decision": "allow", "model": body["model"], "reason": "",
                      "error_type": None}  # fmt: skip
            status = 200
        else:
            results = [{"index": i, "status": "accepted"} for i in range(len(body["events"]))]
            answer, status = {"accepted": len(results), "results": results}, 202
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def get_request(self):  # noqa: ANN201 - socketserver's signature
        self.connections += 1
        return super().get_request()


def test_guard_calls_and_the_sender_reuse_one_kept_alive_connection() -> None:
    server = _CountingServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = FinOpsClient(f"http://127.0.0.1:{server.server_port}", "fo_x_y",
                              flush_interval=60)  # fmt: skip
        assert client.guard("acme", "chat", "gpt-4o")["decision"] == "allow"
        assert client.guard("acme", "chat", "gpt-4o-mini")["model"] == "gpt-4o-mini"
        client.record(tenant="acme", model="gpt-4o", input_tokens=1, output_tokens=1)
        assert client.flush(timeout=10) and client.sent == 1
        client.guard("acme", "chat", "gpt-4o")
        assert server.connections == 1
        client.close()
        assert client.http.is_closed
    finally:
        server.shutdown()
        server.server_close()


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
