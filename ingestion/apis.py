from __future__ import annotations

from typing import Any

import msgspec
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from finops.authentication import HasIngestScope, HasReadScope, tenant_in_scope
from finops.metrics import LITELLM, OTLP, REST, events_counted
from finops.money import decimal_string
from finops.pagination import time_keyset_page

from . import litellm, otlp
from .schema import object_decoder, raw_list_decoder
from .selectors import event_list
from .serializers import EventQuerySerializer, event_as_posted
from .services import ACCEPTED, CONFLICT, DUPLICATE, REJECTED, ItemResult, events_ingest

ENVELOPE_HELP = 'Post one event object, or {"events": [...]} with 1 to %d events.'
TOO_DEEP = "Malformed JSON: nested too deeply."


def _too_large() -> Response:
    limit = settings.FINOPS_MAX_BODY_BYTES
    return Response(
        {"detail": f"Request body is larger than {limit} bytes ({limit // 1048576} MiB)."},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def _split_items(body: bytes) -> tuple[list[bytes], bool]:
    """The raw event items of a body and whether it was a batch envelope."""
    max_events = settings.FINOPS_MAX_BATCH_EVENTS
    try:
        top = object_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError({"non_field_errors": [f"Malformed JSON: {exc}"]}) from None
    except msgspec.ValidationError:
        raise ValidationError({"non_field_errors": [ENVELOPE_HELP % max_events]}) from None
    except RecursionError:
        raise ValidationError({"non_field_errors": [TOO_DEEP]}) from None
    if "events" not in top:
        return [body], False
    extra = sorted(top.keys() - {"events"})
    if extra:
        raise ValidationError({name: ["Unknown field in a batch envelope."] for name in extra})
    try:
        items = raw_list_decoder.decode(top["events"])
    except msgspec.ValidationError:
        raise ValidationError({"events": ["Expected a list of event objects."]}) from None
    except RecursionError:
        raise ValidationError({"events": [TOO_DEEP]}) from None
    if not 1 <= len(items) <= max_events:
        raise ValidationError(
            {"events": [f"A batch holds 1 to {max_events} events; this one has {len(items)}."]}
        )
    return [bytes(item) for item in items], True


def _item_json(result: ItemResult) -> dict[str, Any]:
    status_ = REJECTED if result.status == CONFLICT else result.status
    item: dict[str, Any] = {"index": result.index, "status": status_, "event_id": result.event_id}
    if status_ == REJECTED:
        item["errors"] = result.errors
    else:
        item["cost"] = decimal_string(result.cost)
        item["priced"] = result.priced
    return item


class EventsApi(APIView):
    def get_permissions(self) -> list:
        scope = HasIngestScope() if self.request.method == "POST" else HasReadScope()
        return [IsAuthenticated(), scope]

    @extend_schema(
        operation_id="events_create",
        request={"application/json": OpenApiTypes.OBJECT},
        description=(
            'Post one usage event, or a batch `{"events": [...]}` of 1 to 1000. The event '
            "schema is `EventIn` in this document's components. Bodies over 5 MiB: 413."
        ),
        responses={
            202: OpenApiResponse(description="Accepted or duplicate (all items of a batch)."),
            207: OpenApiResponse(description="Batch with rejected items; per-item results."),
            400: OpenApiResponse(description="Field errors; nothing stored."),
            409: OpenApiResponse(description="The event_id exists with different content."),
            413: OpenApiResponse(description="Body larger than 5 MiB; nothing stored."),
        },
    )
    def post(self, request: Request) -> Response:
        limit = settings.FINOPS_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _too_large()
        try:
            body = request.body
        except RequestDataTooBig:
            return _too_large()
        if len(body) > limit:
            return _too_large()
        items, is_batch = _split_items(body)
        results = events_ingest(
            key_tenant=request.auth.tenant, items=items, api_key_id=request.auth.id
        )
        counts = {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}
        for result in results:
            counts[REJECTED if result.status == CONFLICT else result.status] += 1
        events_counted(intake=REST, accepted=counts[ACCEPTED], duplicate=counts[DUPLICATE],
                       rejected=counts[REJECTED])  # fmt: skip
        if not is_batch:
            result = results[0]
            if result.status == REJECTED:
                return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
            if result.status == CONFLICT:
                return Response(result.errors, status=status.HTTP_409_CONFLICT)
            return Response(
                {
                    "status": result.status,
                    "event_id": result.event_id,
                    "cost": decimal_string(result.cost),
                    "priced": result.priced,
                },
                status=status.HTTP_202_ACCEPTED,
            )
        return Response(
            {
                "accepted": counts[ACCEPTED],
                "duplicates": counts[DUPLICATE],
                "rejected": counts[REJECTED],
                "results": [_item_json(r) for r in results],
            },
            status=status.HTTP_207_MULTI_STATUS if counts[REJECTED] else status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter("tenant", str, description="Tenant slug (operator keys)."),
            OpenApiParameter("feature", str),
            OpenApiParameter("model", str),
            OpenApiParameter("event_id", str),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Inclusive."),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Exclusive."),
            OpenApiParameter("limit", int, description="1..1000, default 100."),
            OpenApiParameter("cursor", str, description="From a previous page's `next`."),
        ],
        responses={
            200: OpenApiResponse(
                description='`{"results": [event as posted + cost, priced], "next": URL|null}`'
            )
        },
    )
    def get(self, request: Request) -> Response:
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tenant = tenant_in_scope(request, params.get("tenant"))
        events = event_list(
            tenant=tenant,
            feature=params.get("feature"),
            model=params.get("model"),
            event_id=params.get("event_id"),
            start=params.get("from"),
            end=params.get("to"),
        )
        rows, next_url = time_keyset_page(request, events)
        return Response({"results": [event_as_posted(e) for e in rows], "next": next_url})


class OtlpTracesApi(APIView):
    """OTLP/HTTP trace export (`POST /v1/traces`): GenAI spans become usage events."""

    permission_classes = [IsAuthenticated, HasIngestScope]
    parser_classes: list = []

    @extend_schema(
        operation_id="otlp_traces_export",
        request={
            "application/x-protobuf": OpenApiTypes.BINARY,
            "application/json": OpenApiTypes.OBJECT,
        },
        responses={
            200: OpenApiResponse(
                description="ExportTraceServiceResponse, in the request's encoding"
            )
        },
    )
    def post(self, request: Request) -> HttpResponse:
        content_type = request.content_type.split(";")[0].strip().lower()
        if content_type not in (otlp.PROTOBUF, otlp.JSON):
            return HttpResponse(
                f"Use {otlp.PROTOBUF} or {otlp.JSON}.", status=415, content_type="text/plain"
            )
        limit = settings.FINOPS_MAX_BODY_BYTES
        try:
            body = request._request.body
        except RequestDataTooBig:
            return self._too_large(f"Request body is larger than {limit} bytes.")
        if len(body) > limit:
            return self._too_large(f"Request body is larger than {limit} bytes.")
        try:
            export = otlp.decode_request(
                body,
                content_type=content_type,
                content_encoding=request.headers.get("Content-Encoding", ""),
                limit=limit,
            )
        except otlp.TooLarge:
            return self._too_large(f"Request body is larger than {limit} bytes once decompressed.")
        except otlp.OtlpError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        # A database fault answers 503 + Retry-After (finops.faults), which exporters retry.
        result = otlp.spans_ingest(
            key_tenant=request.auth.tenant, request=export, api_key_id=request.auth.id
        )
        events_counted(intake=OTLP, accepted=result.accepted, duplicate=result.duplicates,
                       rejected=result.rejected, skipped=result.skipped)  # fmt: skip
        answer = otlp.ExportTraceServiceResponse()
        if result.rejected:
            answer.partial_success.rejected_spans = result.rejected
            answer.partial_success.error_message = "; ".join(result.errors)
        response = HttpResponse(
            otlp.encode_response(answer, content_type=content_type), content_type=content_type
        )
        response["X-Finops-Spans"] = str(result.spans)
        response["X-Finops-Skipped-Spans"] = str(result.skipped)
        return response

    @staticmethod
    def _too_large(message: str) -> HttpResponse:
        # Exporters show the body of a failed export: it names the limit.
        return HttpResponse(message, status=413, content_type="text/plain")


class LiteLLMApi(APIView):
    """LiteLLM's `generic_api` logger (`json_array`, `ndjson` or `single`). LiteLLM drops
    a whole batch on any non-2xx answer, so problems with some payloads answer 207 with
    one result per payload; only a body with no payload at all is a 400."""

    permission_classes = [IsAuthenticated, HasIngestScope]
    parser_classes: list = []

    @extend_schema(
        operation_id="litellm_generic_api_logger",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            202: OpenApiResponse(description='{"accepted", "duplicates", "skipped", "rejected", '
                                 '"results": [{"index", "status", ...}]}'),
            207: OpenApiResponse(description="The same, when some payloads were rejected"),
        },
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        limit = settings.FINOPS_LITELLM_MAX_BODY_BYTES
        try:
            body = request._request.body
        except RequestDataTooBig:
            body = None
        if body is None or len(body) > limit:
            return Response(
                {"detail": f"Request body is larger than {limit} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            payloads = litellm.split_payloads(body)
        except litellm.LiteLLMError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        results, rejected = litellm.payloads_ingest(
            key_tenant=request.auth.tenant, payloads=payloads, api_key_id=request.auth.id
        )
        counts = {s: sum(1 for r in results if r["status"] == s)
                  for s in ("accepted", "duplicate", "skipped", "rejected")}  # fmt: skip
        events_counted(intake=LITELLM, accepted=counts["accepted"],
                       duplicate=counts["duplicate"], rejected=counts["rejected"],
                       skipped=counts["skipped"])  # fmt: skip
        return Response(
            {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
             "skipped": counts["skipped"], "rejected": counts["rejected"], "results": results},
            status=status.HTTP_207_MULTI_STATUS if rejected else status.HTTP_202_ACCEPTED,
        )  # fmt: skip
