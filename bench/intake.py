"""The other intakes for the ingestion benchmark: OTLP/HTTP protobuf span batches
(`POST /v1/traces`) and LiteLLM `json_array` batches (`POST /api/v1/integrations/litellm`)
built from the same `EventFactory` mix as the REST batches, their answer checks, and a
closed-loop poster for any content type."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from ledger import MODELS, ROOT, BenchError, EventFactory, encoder
from load import HOST, HTTP_TIMEOUT_S, MAX_FAILURES_KEPT, LoadResult
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

OTLP_PATH = "/v1/traces"
LITELLM_PATH = "/api/v1/integrations/litellm"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MODEL_MAP = ROOT.parent / "shared" / "data" / "litellm_model_prices.json"
LITELLM_POOL_BATCHES = 8  # distinct pre-encoded LiteLLM batches; ids are fresh per request
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (request index, response, body) -> error or None
Checker = Callable[[int, http.client.HTTPResponse, bytes], str | None]


# --- Closed-loop poster -----------------------------------------------------------------


def post_load(
    *,
    port: int,
    key: str,
    path: str,
    content_type: str,
    bodies: Sequence[bytes],
    sizes: Sequence[int],
    clients: int,
    check: Checker,
) -> LoadResult:
    """As `load.run_load` (closed loop: `clients` threads, each on its own connection,
    post `bodies` until none is left), with any content type, and a check that sees the
    answer's headers. `bodies[i]` is read in the client thread, so a lazy sequence may
    assemble a body there (its cost is the client's)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": content_type}
    result = LoadResult()
    lock = threading.Lock()
    next_index = itertools.count()

    def fail(message: str) -> None:
        with lock:
            result.failures += 1
            if len(result.failure_samples) < MAX_FAILURES_KEPT:
                result.failure_samples.append(message[:500])

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
        latencies: list[float] = []
        completions: list[tuple[float, int]] = []
        events = 0
        try:
            while True:
                with lock:
                    index = next(next_index)
                if index >= len(bodies):
                    break
                body = bodies[index]
                started = time.perf_counter()
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    fail(f"request {index}: {exc.__class__.__name__}: {exc}")
                    continue
                done = time.perf_counter()
                latencies.append(done - started)
                error = check(index, response, data)
                if error:
                    fail(f"request {index}: {error}")
                else:
                    events += sizes[index]
                    completions.append((done - load_started, sizes[index]))
        finally:
            conn.close()
            with lock:
                result.latencies_s.extend(latencies)
                result.completions.extend(completions)
                result.requests += len(latencies)
                result.events += events

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    load_started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - load_started
    result.completions.sort()
    return result


# --- OTLP/HTTP protobuf -----------------------------------------------------------------

OTLP_RESOURCE = {
    "service.name": "assistant-backend",
    "service.version": "2.14.1",
    "deployment.environment.name": "prod",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.36.0",
}
OTLP_SCOPE = ("opentelemetry.instrumentation.openai_v2", "2.1b0")


def _attribute(attributes: Any, key: str, value: str | int) -> None:
    kv: KeyValue = attributes.add()
    kv.key = key
    if isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = value


def _nanos(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def otlp_request(factory: EventFactory, *, size: int, now: datetime) -> bytes:
    """One encoded ExportTraceServiceRequest of `size` GenAI client spans (one resource,
    one scope), each with the GenAI and finops attributes the server maps and fresh
    trace, span and parent span ids."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for name, value in OTLP_RESOURCE.items():
        _attribute(resource_spans.resource.attributes, name, value)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = OTLP_SCOPE
    for _ in range(size):
        event = factory.event(now)
        span = scope_spans.spans.add()
        span.trace_id = bytes.fromhex(factory.new_id())
        ids = bytes.fromhex(factory.new_id())
        span.span_id, span.parent_span_id = ids[:8], ids[8:]
        span.name = f"chat {event['model']}"
        span.kind = Span.SPAN_KIND_CLIENT
        end = _nanos(event["timestamp"])
        span.start_time_unix_nano = end - event["latency_ms"] * 1_000_000
        span.end_time_unix_nano = end
        span.status.code = 1  # STATUS_CODE_OK
        attributes = span.attributes
        _attribute(attributes, "gen_ai.operation.name", "chat")
        _attribute(attributes, "gen_ai.provider.name", event["provider"])
        _attribute(attributes, "gen_ai.request.model", event["model"])
        _attribute(attributes, "gen_ai.response.model", event["model"])
        _attribute(attributes, "gen_ai.usage.input_tokens", event["input_tokens"])  # + cached
        if event["cached_input_tokens"]:
            _attribute(
                attributes, "gen_ai.usage.cache_read.input_tokens", event["cached_input_tokens"]
            )
        _attribute(attributes, "gen_ai.usage.output_tokens", event["output_tokens"])
        if "reasoning_tokens" in event:
            _attribute(
                attributes, "gen_ai.usage.reasoning.output_tokens", event["reasoning_tokens"]
            )
        _attribute(attributes, "finops.tenant", event["tenant"])
        _attribute(attributes, "finops.feature", event["feature"])
        _attribute(attributes, "finops.prompt_template", event["prompt_template"])
        _attribute(attributes, "user.id", event["user"])
        _attribute(attributes, "session.id", event["session"])
    return request.SerializeToString()


def otlp_bodies(
    factory: EventFactory, *, total: int, batch_size: int
) -> tuple[list[bytes], list[int]]:
    """Pre-encoded OTLP protobuf bodies and the span count of each."""
    now = datetime.now(UTC)
    bodies: list[bytes] = []
    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(batch_size, remaining)
        bodies.append(otlp_request(factory, size=size, now=now))
        sizes.append(size)
        remaining -= size
    return bodies, sizes


def otlp_checker(sizes: Sequence[int]) -> Checker:
    """200, an ExportTraceServiceResponse without `partial_success.rejected_spans`, and
    every span read and none skipped (the server's X-Finops-Spans headers)."""

    def check(index: int, response: http.client.HTTPResponse, data: bytes) -> str | None:
        if response.status != 200:
            return f"HTTP {response.status}: {data[:300]!r}"
        answer = ExportTraceServiceResponse()
        try:
            answer.ParseFromString(data)
        except Exception as exc:  # protobuf's DecodeError
            return f"unreadable ExportTraceServiceResponse: {exc}"
        if answer.partial_success.rejected_spans:
            return (
                f"rejected_spans {answer.partial_success.rejected_spans} of {sizes[index]}: "
                f"{answer.partial_success.error_message[:200]}"
            )
        spans = response.getheader("X-Finops-Spans")
        skipped = response.getheader("X-Finops-Skipped-Spans")
        if spans != str(sizes[index]) or skipped != "0":
            return f"server read {spans} spans of {sizes[index]}, skipped {skipped}"
        return None

    return check


# --- LiteLLM StandardLoggingPayload ------------------------------------------------------

# The price map has no entry for this dated Anthropic name any more; the same model and
# prices under its Bedrock name stand in.
MODEL_MAP_STAND_INS = {"claude-3-5-sonnet-20241022": "anthropic.claude-3-5-sonnet-20241022-v2:0"}
API_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1/messages",
    "vertex_ai": "https://europe-west1-aiplatform.googleapis.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "bedrock": "https://bedrock-runtime.us-east-1.amazonaws.com",
}
SUPPORTED_OPENAI_PARAMS = (
    "frequency_penalty logit_bias logprobs top_logprobs max_tokens max_completion_tokens "
    "modalities prediction n presence_penalty seed stop stream stream_options temperature "
    "top_p tools tool_choice function_call functions max_retries extra_headers "
    "parallel_tool_calls audio web_search_options response_format user reasoning_effort"
).split()
MESSAGES = {
    "document_summarization": "Summarize the attached document in five bullet points.",
    "chat_assistant": "Can you help me rephrase this email to sound more polite?",
    "support_triage": "Classify this ticket: 'My invoice shows a charge I do not recognize.'",
    "code_review": "Review this diff and point out bugs or risky changes.",
    "search_answering": "Answer the question using only the retrieved passages.",
    "invoice_extraction": "Extract vendor, date, total and currency from this invoice.",
}
ID_MARK = "00000000-feed-beef-cafe-0123456789ab"  # replaced by a fresh id per request


def load_model_map(path: Path) -> dict[str, dict[str, Any]]:
    """`model_map_information` per bench model, shaped as LiteLLM's get_model_info fills
    it: the model's entry of the price map, with every other key the map's chat models use
    present as null, the map key and the supported OpenAI parameters."""
    if not path.is_file():
        raise BenchError(
            f"LiteLLM's model map {path} is missing: pass --litellm-model-map PATH "
            "or skip the LiteLLM phase with --litellm-events 0"
        )
    prices = json.loads(path.read_text())
    every_key = sorted(
        {
            key
            for entry in prices.values()
            if isinstance(entry, dict) and entry.get("mode") == "chat"
            for key in entry
        }
    )
    out: dict[str, dict[str, Any]] = {}
    for model in MODELS:
        name = MODEL_MAP_STAND_INS.get(model, model)
        entry = prices.get(name)
        if not isinstance(entry, dict):
            raise BenchError(f"no entry for {name} in {path}")
        value = {"key": name, **dict.fromkeys(every_key), **entry}
        value["supported_openai_params"] = SUPPORTED_OPENAI_PARAMS
        out[model] = {"model_map_key": name, "model_map_value": value}
    return out


def _uuid(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def litellm_payload(
    event: dict[str, Any], model_map: dict[str, Any], *, call_id: str, extra_id: str
) -> dict[str, Any]:
    """A StandardLoggingPayload of a successful `acompletion`, as LiteLLM's proxy logs it."""
    model, provider = event["model"], event["provider"]
    value = model_map["model_map_value"]
    prompt, cached = event["input_tokens"], event["cached_input_tokens"]
    completion, reasoning = event["output_tokens"], event.get("reasoning_tokens", 0)
    cached_price = value.get("cache_read_input_token_cost") or value["input_cost_per_token"]
    input_cost = (prompt - cached) * value["input_cost_per_token"] + cached * cached_price
    output_cost = completion * value["output_cost_per_token"]
    cost = input_cost + output_cost
    end = event["timestamp"].timestamp()
    start = end - event["latency_ms"] / 1000
    tenant, user = event["tenant"], event["user"]
    api_base = API_BASES[provider]
    usage: dict[str, Any] = {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {
            "accepted_prediction_tokens": None,
            "audio_tokens": None,
            "reasoning_tokens": reasoning,
            "rejected_prediction_tokens": None,
        },
        "prompt_tokens_details": {"audio_tokens": None, "cached_tokens": cached},
    }
    return {
        "id": call_id,
        "trace_id": _uuid(extra_id),
        "session_id": event["session"],
        "litellm_call_id": call_id,
        "call_type": "acompletion",
        "stream": False,
        "response_cost": cost,
        "cost_breakdown": {
            "input_cost": input_cost,
            "output_cost": output_cost,
            "total_cost": cost,
            "tool_usage_cost": 0.0,
        },
        "response_cost_failure_debug_info": None,
        "status": "success",
        "status_fields": {"llm_api_status": "success", "guardrail_status": "not_run"},
        "custom_llm_provider": provider,
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "startTime": start,
        "endTime": end,
        "completionStartTime": end,
        "response_time": end - start,
        "model_map_information": model_map,
        "model": model,
        "model_id": extra_id[:24] + "deadbeefcafe0000",
        "model_group": model,
        "api_base": api_base,
        "metadata": {
            "user_api_key_hash": f"{extra_id}{extra_id}",
            "user_api_key_alias": f"{tenant}-{event['feature']}",
            "user_api_key_spend": 118.42,
            "user_api_key_max_budget": None,
            "user_api_key_budget_reset_at": None,
            "user_api_key_user_spend": None,
            "user_api_key_user_max_budget": None,
            "user_api_key_team_spend": 1630.5,
            "user_api_key_team_max_budget": 5000.0,
            "user_api_key_org_id": None,
            "user_api_key_org_alias": None,
            "user_api_key_team_id": tenant,
            "user_api_key_project_id": None,
            "user_api_key_project_alias": None,
            "user_api_key_user_id": user,
            "user_api_key_user_email": None,
            "user_api_key_team_alias": tenant,
            "user_api_key_end_user_id": user,
            "user_api_key_request_route": "/chat/completions",
            "user_api_key_auth_metadata": {},
            "spend_logs_metadata": None,
            "requester_ip_address": "10.20.3.17",
            "user_agent": "OpenAI/Python 1.99.1",
            "requester_metadata": {},
            "requester_custom_headers": {},
            "prompt_management_metadata": None,
            "mcp_tool_call_metadata": None,
            "vector_store_request_metadata": None,
            "routing_decision": None,
            "applied_guardrails": [],
            "usage_object": None,
            "cold_storage_object_key": None,
            "team_alias": tenant,
            "team_id": tenant,
        },
        "cache_hit": None,
        "cache_key": None,
        "saved_cache_cost": 0.0,
        "request_tags": [
            f"tenant:{tenant}",
            f"feature:{event['feature']}",
            f"prompt:{event['prompt_template']}",
        ],
        "end_user": user,
        "requester_ip_address": "10.20.3.17",
        "user_agent": "OpenAI/Python 1.99.1",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for ACME employees."},
            {"role": "user", "content": MESSAGES[event["feature"]]},
        ],
        "response": {
            "id": f"chatcmpl-{extra_id[:29]}",
            "created": int(end),
            "model": model,
            "object": "chat.completion",
            "system_fingerprint": "fp_07871e2ad8",
            "choices": [
                {
                    "finish_reason": "stop",
                    "index": 0,
                    "message": {
                        "content": "[redacted-by-litellm]",
                        "role": "assistant",
                        "tool_calls": None,
                        "function_call": None,
                    },
                }
            ],
            "usage": usage,
        },
        "error_str": None,
        "error_information": None,
        "model_parameters": {"temperature": 0.2, "max_tokens": 2048, "user": user},
        "hidden_params": {
            "model_id": extra_id[:24] + "deadbeefcafe0000",
            "cache_key": None,
            "api_base": api_base,
            "response_cost": cost,
            "litellm_overhead_time_ms": 4.1,
            "additional_headers": {
                "llm_provider-x-ratelimit-remaining-requests": "9999",
                "llm_provider-x-ratelimit-remaining-tokens": "29940000",
            },
            "batch_models": None,
            "litellm_model_name": model,
            "usage_object": None,
        },
        "guardrail_information": None,
        "standard_built_in_tools_params": {"web_search_options": None, "file_search": None},
    }


class LiteLLMBodies(Sequence[bytes]):
    """`json_array` bodies of LiteLLM payloads: a pool of pre-encoded batches, each split
    around its payloads' ids, so memory stays bounded (a 512-payload body is about 6 MB).
    `self[i]` joins a batch of the pool with fresh, unique ids made before timing: no
    encoding in the timed loop, one join (a copy of the body)."""

    def __init__(
        self,
        factory: EventFactory,
        model_map: dict[str, dict[str, Any]],
        *,
        total: int,
        batch_size: int,
        pool: int = LITELLM_POOL_BATCHES,
    ) -> None:
        self._factory = factory
        self._model_map = model_map
        self._now = datetime.now(UTC)
        self.sizes = [min(batch_size, total - start) for start in range(0, total, batch_size)]
        self._pool = [self._template(batch_size) for _ in range(min(pool, len(self.sizes)))]
        tail = self.sizes[-1]
        self._tail = self._template(tail) if tail != batch_size else None
        self._ids = [_uuid(factory.new_id()).encode() for _ in range(total)]
        self._starts = list(itertools.accumulate(self.sizes, initial=0))

    def _template(self, size: int) -> list[bytes]:
        factory = self._factory
        payloads = []
        for _ in range(size):
            event = factory.event(self._now)
            payloads.append(
                litellm_payload(
                    event,
                    self._model_map[event["model"]],
                    call_id=ID_MARK,
                    extra_id=factory.new_id(),
                )
            )
        pieces = encoder.encode(payloads).split(ID_MARK.encode())
        if len(pieces) != 2 * size + 1:  # `id` and `litellm_call_id` of each payload
            raise BenchError("LiteLLM payload template: the id mark is not where expected")
        return pieces

    def _pieces(self, index: int) -> list[bytes]:
        if self._tail is not None and index == len(self.sizes) - 1:
            return self._tail
        return self._pool[index % len(self._pool)]

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        pieces = self._pieces(index)
        ids = self._ids[self._starts[index] : self._starts[index + 1]]
        parts = [pieces[0]]
        for n, piece in enumerate(pieces[1:]):
            parts.append(ids[n // 2])
            parts.append(piece)
        return b"".join(parts)

    def body_bytes(self, index: int) -> int:
        pieces = self._pieces(index)
        return sum(map(len, pieces)) + (len(pieces) - 1) * len(ID_MARK)

    def total_bytes(self) -> int:
        return sum(self.body_bytes(i) for i in range(len(self)))

    def model_map_bytes(self) -> float:
        """Average encoded size of `model_map_information` over the pool's payloads."""
        sizes = [len(encoder.encode(v)) for v in self._model_map.values()]
        return sum(sizes) / len(sizes)


class LiteLLMOut(msgspec.Struct):
    accepted: int
    duplicates: int
    skipped: int
    rejected: int


litellm_decoder = msgspec.json.Decoder(LiteLLMOut)


def litellm_checker(sizes: Sequence[int]) -> Checker:
    """202 with every payload accepted (none a duplicate, skipped or rejected)."""

    def check(index: int, response: http.client.HTTPResponse, data: bytes) -> str | None:
        if response.status != 202:
            return f"HTTP {response.status}: {data[:300]!r}"
        try:
            out = litellm_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            return f"unreadable answer: {exc}"
        if out.accepted != sizes[index] or out.duplicates or out.skipped or out.rejected:
            return (
                f"accepted {out.accepted} of {sizes[index]} (duplicates {out.duplicates}, "
                f"skipped {out.skipped}, rejected {out.rejected}): {data[:300]!r}"
            )
        return None

    return check
