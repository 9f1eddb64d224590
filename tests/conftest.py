from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from rest_framework.test import APIClient

from finops.models import Tenant
from finops.services import apikey_create
from tests.factories import TenantFactory

SHARED_PRICE_FILE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "litellm_model_prices.json"
)


# The suite serves plain HTTP (the test client, live_server, the servers tests start), as
# `make run` does. pytest-django loads the settings before this file is read, so the
# HTTPS defaults (on whenever DEBUG is off) are turned off here for this process, and in
# the environment for the processes tests start; tests/test_deploy_check.py turns them on.
os.environ["FINOPS_HTTPS"] = "0"
PLAIN_HTTP = {
    "FINOPS_HTTPS": False,
    "SECURE_SSL_REDIRECT": False,
    "SESSION_COOKIE_SECURE": False,
    "CSRF_COOKIE_SECURE": False,
    "SECURE_HSTS_SECONDS": 0,
}


@pytest.fixture(scope="session", autouse=True)
def plain_http() -> Iterator[None]:
    with override_settings(**PLAIN_HTTP):
        yield


@pytest.fixture
def litellm_price_file() -> Path:
    if not SHARED_PRICE_FILE.exists():
        pytest.skip("LiteLLM's price map is not beside the repository (../shared/data/)")
    return SHARED_PRICE_FILE


@pytest.fixture
def acme(db: None) -> Tenant:
    return TenantFactory(slug="acme", tier=Tenant.Tier.ENTERPRISE)


@pytest.fixture
def globex(db: None) -> Tenant:
    return TenantFactory(slug="globex", tier=Tenant.Tier.PRO)


def _client(tenant: Tenant | None, scopes: list[str]) -> APIClient:
    _, plaintext = apikey_create(tenant=tenant, scopes=scopes, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.key = plaintext  # type: ignore[attr-defined]
    return client


@pytest.fixture
def operator(db: None) -> APIClient:
    """A client holding an operator key (all tenants, ingest + read)."""
    return _client(None, ["ingest", "read"])


@pytest.fixture
def acme_client(acme: Tenant) -> APIClient:
    return _client(acme, ["ingest", "read"])


@pytest.fixture
def globex_client(globex: Tenant) -> APIClient:
    return _client(globex, ["ingest", "read"])


@pytest.fixture
def make_client(db: None) -> Callable[..., APIClient]:
    return _client


def recent(minutes: int = 10) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


# One instant for the whole run, so that the same event posted twice is the same content.
EVENT_TIME = recent()


def event(**fields: Any) -> dict[str, Any]:
    """A valid event priced by the default table (gpt-4o-2024-08-06)."""
    base = {
        "event_id": "evt-1",
        "tenant": "acme",
        "timestamp": EVENT_TIME,
        "feature": "document_summarization",
        "prompt_template": "summarize-v3",
        "model": "gpt-4o-2024-08-06",
        "input_tokens": 1200,
        "cached_input_tokens": 200,
        "output_tokens": 300,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def post_events(client: APIClient, payload: Any, **extra: Any):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post("/api/v1/events", body, content_type="application/json", **extra)


def run_at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Call `call(i)` from `count` threads released together, each with its own database
    connection; return the results in order."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Any:
        try:
            barrier.wait()
            return call(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


@pytest.fixture(autouse=True)
def fresh_key_cache(settings) -> None:
    """Tests change keys and tenants with `.update()`, which sends no signal: each test
    reads keys afresh unless it tests the cache itself."""
    from finops.authentication import key_cache_clear

    settings.FINOPS_API_KEY_CACHE_SECONDS = 0
    key_cache_clear()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(  # type: ignore[attr-defined]
            {
                "body": json.loads(body),
                "alert_id": self.headers.get("X-Finops-Alert-Id"),
                "digest_id": self.headers.get("X-Finops-Digest-Id"),
            }  # fmt: skip
        )
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(settings) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP receiver on 127.0.0.1, set as the alert webhook."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.FINOPS_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.FINOPS_ALERT_EMAILS = ["finops@example.com"]
    yield server
    server.shutdown()
