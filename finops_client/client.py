"""The sender, the guard and the decorator, over one kept-alive HTTP connection pool."""

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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from .usage import usage_from_response

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


class FinOpsClient:
    """Sends events to `POST /api/v1/events` in the background; asks the guard.

    One `httpx.Client` serves both, so the guard's calls, which sit in front of every
    model call, reuse a kept-alive connection instead of opening one each time."""

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
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=timeout,
        )
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
        """Send what is queued, stop the sender and close the connections."""
        if self._stopped.is_set():
            return
        self.flush()
        self._stopped.set()
        self._flush_now.set()
        self._thread.join(timeout=5)
        self.http.close()
        atexit.unregister(self.close)

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
            except httpx.TransportError as exc:  # connection refused, reset, timed out
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
        response = self.http.post(path, content=body)
        try:
            return response.status_code, response.json() if response.content else {}
        except ValueError:
            return response.status_code, {}

    # --- The guard --------------------------------------------------------------------

    def guard(self, tenant: str | None, feature: str, model: str, **fields: Any) -> dict[str, Any]:
        """The guard's decision for one call: `{"decision", "model", "reason",
        "error_type", "reservation_id", "retry_after", "notice"}`. Put its
        `reservation_id` on the call's event (`record(..., reservation_id=...)`) so the
        call's reservation is settled when its cost arrives. Raises `RuntimeError` if
        the service does not answer 200."""
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
    Tenant, user and session come from `usage_context`; `fixed` fields (`provider=`,
    `model=` for Bedrock, whose answers name no model) go on every event, and a fixed
    provider wins over the one a response's shape suggests."""

    def report(response: Any, started: float) -> None:
        fields = usage_from_response(response, provider=fixed.get("provider"))
        if fields is None:
            return
        event = {**fixed, **fields, "feature": feature}
        if fixed.get("provider"):
            event["provider"] = fixed["provider"]
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
