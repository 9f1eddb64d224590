"""finops client: report LLM calls to a finops service and ask its guard.

Standard library only.

    from finops_client import FinOpsClient, track_llm_cost, usage_context

    client = FinOpsClient("http://127.0.0.1:8000", "fo_...")

    @track_llm_cost(client, feature="document_summarization", prompt_template="summarize-v3")
    def summarize(text):
        return openai_client.chat.completions.create(model="gpt-4o", messages=[...])

    with usage_context(tenant="acme", user="u-42", session="s-1"):
        summarize("...")

Events are queued and sent in batches by a background thread (on size, on an interval
and at exit), retried with backoff on 5xx answers and connection errors. What could not
be delivered is counted in `client.undelivered` and logged, never dropped silently.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import inspect
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

__all__ = ["FinOpsClient", "track_llm_cost", "usage_context", "usage_from_response"]

log = logging.getLogger("finops_client")

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "finops_usage_context", default=None
)


@contextmanager
def usage_context(**fields: str) -> Iterator[None]:
    """Tenant, user and session (any event fields) for the calls made inside."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_from_response(response: Any) -> dict[str, Any] | None:
    """Model and tokens of an OpenAI-style or Anthropic-style response (objects or
    dicts), as event fields; None when it carries no usage."""
    usage = _get(response, "usage")
    if usage is None:
        return None
    fields: dict[str, Any] = {}
    model = _get(response, "model")
    if model:
        fields["model"] = model
    if _get(usage, "prompt_tokens") is not None:  # OpenAI: prompt tokens include cached
        fields["input_tokens"] = int(_get(usage, "prompt_tokens") or 0)
        fields["output_tokens"] = int(_get(usage, "completion_tokens") or 0)
        cached = _get(_get(usage, "prompt_tokens_details"), "cached_tokens")
        if cached:
            fields["cached_input_tokens"] = int(cached)
        reasoning = _get(_get(usage, "completion_tokens_details"), "reasoning_tokens")
        if reasoning:
            fields["reasoning_tokens"] = int(reasoning)
        return fields
    if _get(usage, "input_tokens") is not None:  # Anthropic: cache tokens come apart
        cache_read = int(_get(usage, "cache_read_input_tokens") or 0)
        cache_write = int(_get(usage, "cache_creation_input_tokens") or 0)
        fields["input_tokens"] = int(_get(usage, "input_tokens") or 0) + cache_read + cache_write
        fields["output_tokens"] = int(_get(usage, "output_tokens") or 0)
        if cache_read:
            fields["cached_input_tokens"] = cache_read
        if cache_write:
            fields["cache_write_tokens"] = cache_write
        return fields
    return None


class FinOpsClient:
    """Sends events to `POST /api/v1/events` in the background; asks the guard."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 2.0,
        max_queue: int = 10_000,
        max_retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.batch_size = max(1, min(batch_size, 1000))
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.sent = 0
        self.undelivered = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self._flush_now = threading.Event()
        self._stopped = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="finops-sender", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- Reporting --------------------------------------------------------------------

    def record(self, **event: Any) -> None:
        """Queue one event (fields as the events API takes them). The event id and
        timestamp default to a new UUID and now."""
        event = {**(_context.get() or {}), **event}
        event.setdefault("event_id", str(uuid.uuid4()))
        event.setdefault("timestamp", datetime.now(UTC).isoformat())
        try:
            with self._idle:
                self._queue.put_nowait(event)
                self._pending += 1
        except queue.Full:
            self.undelivered += 1
            log.warning("finops: queue full (%d events), event %s not sent",
                        self._queue.maxsize, event["event_id"])  # fmt: skip
            return
        if self._queue.qsize() >= self.batch_size:
            self._flush_now.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything queued now; True once the queue is empty."""
        self._flush_now.set()
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self.flush()
        self._stopped.set()
        self._flush_now.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._flush_now.wait(self.flush_interval)
            self._flush_now.clear()
            while True:
                batch = []
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    break
                self._send(batch)
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _send(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": batch}).encode()
        for attempt in range(self.max_retries + 1):
            try:
                status, answer = self._post("/api/v1/events", body)
            except (urllib.error.URLError, OSError) as exc:
                status, answer = None, str(exc)
            if status is not None and status < 500:
                if status in (202, 207):
                    rejected = [r for r in answer.get("results", []) if r["status"] == "rejected"]
                    self.sent += len(batch) - len(rejected)
                    if rejected:
                        self.undelivered += len(rejected)
                        log.warning("finops: %d event(s) rejected: %s", len(rejected),
                                    rejected[:3])  # fmt: skip
                else:
                    self.undelivered += len(batch)
                    log.warning("finops: batch of %d refused (%s): %s", len(batch), status,
                                answer)  # fmt: skip
                return
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt)
        self.undelivered += len(batch)
        log.warning("finops: batch of %d not delivered after %d attempts",
                    len(batch), self.max_retries + 1)  # fmt: skip

    def _post(self, path: str, body: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=body,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}

    # --- The guard --------------------------------------------------------------------

    def guard(self, tenant: str | None, feature: str, model: str, **fields: Any) -> dict[str, Any]:
        """The guard's decision for one call: `{"decision", "model", "reason",
        "error_type"}`. Raises `RuntimeError` if the service does not answer 200."""
        body = {"feature": feature, "model": model, **fields}
        if tenant:
            body["tenant"] = tenant
        status, answer = self._post("/api/v1/guard", json.dumps(body).encode())
        if status != 200:
            raise RuntimeError(f"finops guard answered {status}: {answer}")
        return answer


def track_llm_cost(
    client: FinOpsClient, *, feature: str, prompt_template: str | None = None, **fixed: Any
) -> Callable:
    """Report the usage of each response the decorated function returns (sync or async).
    Tenant, user and session come from `usage_context`."""

    def report(response: Any, started: float) -> None:
        fields = usage_from_response(response)
        if fields is None:
            return
        event = {**fixed, **fields, "feature": feature}
        if prompt_template:
            event["prompt_template"] = prompt_template
        event["latency_ms"] = int((time.monotonic() - started) * 1000)
        client.record(**event)

    def decorate(function: Callable) -> Callable:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.monotonic()
                response = await function(*args, **kwargs)
                report(response, started)
                return response

            return async_wrapper

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            response = function(*args, **kwargs)
            report(response, started)
            return response

        return wrapper

    return decorate
