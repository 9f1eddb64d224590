"""Management API of the core: tenants, API keys, prices and tier plans.

Every management endpoint (here and in each app's `operator_apis`) is for operator keys
with the `manage` scope: no key 401, a tenant key or a key without `manage` 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .authentication import HasManageScope, IsOperatorKey
from .models import ApiKey, ModelPrice, PriceRate, Tenant, TierPlan
from .operator_serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeyQuerySerializer,
    ApiKeySerializer,
    PriceCreateSerializer,
    PriceDetailSerializer,
    PriceHistoryQuerySerializer,
    PriceImportQuerySerializer,
    PriceImportResultSerializer,
    PriceQuerySerializer,
    PriceSerializer,
    TenantCreateSerializer,
    TenantQuerySerializer,
    TenantSerializer,
    TenantUpdateSerializer,
    TierPlanCreateSerializer,
    TierPlanSerializer,
    TierPlanUpdateSerializer,
)
from .pagination import time_keyset_page
from .pricing import parse_price_file, prices_import
from .revenue import (
    TierPlanExists,
    plan_ltv,
    tier_plan_create,
    tier_plan_delete,
    tier_plan_update,
    tier_plans,
)
from .selectors import price_is_used, prices_with_use
from .services import (
    PriceInUse,
    TenantHasHistory,
    apikey_create,
    apikey_revoke,
    price_create,
    price_delete,
    price_import_reasons,
    tenant_create,
    tenant_delete,
    tenant_update,
)

PAGE_PARAMETERS = [OpenApiParameter("limit", int), OpenApiParameter("cursor", str)]


def page_response(description: str) -> dict[int, OpenApiResponse]:
    return {200: OpenApiResponse(description=f'{{"results": [{description}], "next": URL|null}}')}


class ManageApi(APIView):
    """Operator keys with the `manage` scope only."""

    permission_classes = [IsAuthenticated, IsOperatorKey, HasManageScope]

    def list_page(
        self,
        request: Request,
        rows: QuerySet,
        serializer_class: type[serializers.Serializer],
        *,
        params: dict[str, Any],
        filters: tuple[str, ...] = (),
        time_field: str = "created_at",
    ) -> Response:
        """One page of `rows`, newest first by `time_field`, narrowed by each of
        `filters` the query gives (an exact match)."""
        rows = rows.filter(**{name: params[name] for name in filters if params.get(name)})
        page, next_url = time_keyset_page(request, rows, time_field=time_field)
        return Response({"results": serializer_class(page, many=True).data, "next": next_url})


def field_errors(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A model's validation error as the API's field-level 400."""
    if hasattr(exc, "error_dict"):
        detail = {("non_field_errors" if name == "__all__" else name): messages
                  for name, messages in exc.message_dict.items()}  # fmt: skip
    else:
        detail = {"non_field_errors": exc.messages}
    return exceptions.ValidationError(detail)


def query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Tenants ---------------------------------------------------------------------------


class TenantsApi(ManageApi):
    @extend_schema(
        operation_id="manage_tenants_list",
        parameters=[
            OpenApiParameter("tier", str),
            OpenApiParameter("status", str),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("tenant"),
    )
    def get(self, request: Request) -> Response:
        params = query(TenantQuerySerializer, request)
        return self.list_page(request, Tenant.objects.all(), TenantSerializer, params=params,
                              filters=("tier", "status"))  # fmt: skip

    @extend_schema(
        operation_id="manage_tenants_create",
        request=TenantCreateSerializer,
        responses={201: TenantSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            tenant = tenant_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        except IntegrityError:  # the same slug created at the same moment
            raise exceptions.ValidationError(
                {"slug": ["A tenant with this slug exists."]}
            ) from None
        return Response(TenantSerializer(tenant).data, status=status.HTTP_201_CREATED)


class TenantDetailApi(ManageApi):
    @extend_schema(operation_id="manage_tenants_retrieve", responses=TenantSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(TenantSerializer(get_object_or_404(Tenant, slug=slug)).data)

    @extend_schema(
        operation_id="manage_tenants_update",
        request=TenantUpdateSerializer,
        responses=TenantSerializer,
    )
    def patch(self, request: Request, slug: str) -> Response:
        tenant = get_object_or_404(Tenant, slug=slug)
        serializer = TenantUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            tenant = tenant_update(tenant=tenant, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        return Response(TenantSerializer(tenant).data)

    @extend_schema(
        operation_id="manage_tenants_destroy",
        responses={
            204: None,
            409: OpenApiResponse(
                description="The tenant has usage or statements: close it "
                "(PATCH status=closed) instead."
            ),
        },  # fmt: skip
    )
    def delete(self, request: Request, slug: str) -> Response:
        tenant = get_object_or_404(Tenant, slug=slug)
        try:
            tenant_delete(tenant=tenant)
        except TenantHasHistory:
            return Response(
                {"detail": "This tenant has usage or statements and is never deleted; close it "
                           'instead (PATCH {"status": "closed"}).'},
                status=status.HTTP_409_CONFLICT,
            )  # fmt: skip
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Tier plans ----------------------------------------------------------------------


def _plans_out(plans: list[TierPlan], *, many: bool = True) -> Any:
    """Plans as the API shows them, each with the lifetime value it predicts."""
    every = tier_plans()
    ltv = {plan.tier: plan_ltv(plan.tier, every) for plan in plans}
    serializer = TierPlanSerializer(plans if many else plans[0], many=many, context={"ltv": ltv})
    return serializer.data


def _plan(tier: str) -> TierPlan:
    return get_object_or_404(TierPlan, tier=tier)


class TierPlansApi(ManageApi):
    @extend_schema(
        operation_id="manage_tier_plans_list",
        responses={200: OpenApiResponse(description='{"results": [tier plan], "next": null}')},
        description="Every tier's plan (a handful: one page), cheapest first.",
    )
    def get(self, request: Request) -> Response:
        return Response({"results": _plans_out(list(TierPlan.objects.all())), "next": None})

    @extend_schema(
        operation_id="manage_tier_plans_create",
        request=TierPlanCreateSerializer,
        responses={201: TierPlanSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = TierPlanCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            plan = tier_plan_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        except TierPlanExists:
            raise exceptions.ValidationError(
                {"tier": ["This tier has a plan: change it (PATCH) instead."]}
            ) from None
        return Response(_plans_out([plan], many=False), status=status.HTTP_201_CREATED)


class TierPlanDetailApi(ManageApi):
    @extend_schema(operation_id="manage_tier_plans_retrieve", responses=TierPlanSerializer)
    def get(self, request: Request, tier: str) -> Response:
        return Response(_plans_out([_plan(tier)], many=False))

    @extend_schema(
        operation_id="manage_tier_plans_update",
        request=TierPlanUpdateSerializer,
        responses=TierPlanSerializer,
    )
    def patch(self, request: Request, tier: str) -> Response:
        plan = _plan(tier)
        serializer = TierPlanUpdateSerializer(data=request.data, partial=True,
                                              context={"tier": tier})  # fmt: skip
        serializer.is_valid(raise_exception=True)
        try:
            plan = tier_plan_update(plan=plan, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        return Response(_plans_out([plan], many=False))

    @extend_schema(operation_id="manage_tier_plans_destroy", responses={204: None})
    def delete(self, request: Request, tier: str) -> Response:
        tier_plan_delete(plan=_plan(tier))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- API keys --------------------------------------------------------------------------


class ApiKeysApi(ManageApi):
    @extend_schema(
        operation_id="manage_api_keys_list",
        parameters=[
            OpenApiParameter("tenant", str, description="A slug, or `operator`."),
            OpenApiParameter("active", bool),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("API key (never its secret)"),
    )
    def get(self, request: Request) -> Response:
        params = query(ApiKeyQuerySerializer, request)
        keys = ApiKey.objects.select_related("tenant")
        tenant = params.get("tenant")
        if tenant == "operator":
            keys = keys.filter(tenant__isnull=True)
        elif tenant:
            keys = keys.filter(tenant__slug=tenant)
        if params.get("active") is not None:
            keys = keys.filter(revoked_at__isnull=params["active"] == "true")
        rows, next_url = time_keyset_page(request, keys, time_field="created_at")
        return Response({"results": ApiKeySerializer(rows, many=True).data, "next": next_url})

    @extend_schema(
        operation_id="manage_api_keys_create",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        description="The answer carries the whole key (`key`) this once; only a digest is stored.",
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key, plaintext = apikey_create(tenant=data["tenant"], scopes=data["scopes"],
                                       name=data["name"])  # fmt: skip
        key.key = plaintext  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


def _key(key_id: int) -> ApiKey:
    return get_object_or_404(ApiKey.objects.select_related("tenant"), id=key_id)


class ApiKeyDetailApi(ManageApi):
    @extend_schema(operation_id="manage_api_keys_retrieve", responses=ApiKeySerializer)
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeySerializer(_key(key_id)).data)


class ApiKeyRevokeApi(ManageApi):
    @extend_schema(
        operation_id="manage_api_keys_revoke",
        request=None,
        responses=ApiKeySerializer,
        description="Idempotent: a revoked key keeps its first `revoked_at`. The key stops "
        "authenticating at once on this worker and within FINOPS_API_KEY_CACHE_SECONDS on "
        "the others.",
    )
    def post(self, request: Request, key_id: int) -> Response:
        key = apikey_revoke(key=_key(key_id))
        return Response(ApiKeySerializer(key).data)


# --- Prices ----------------------------------------------------------------------------


def _prices() -> QuerySet[ModelPrice]:
    return ModelPrice.objects.prefetch_related(
        Prefetch("rates", queryset=PriceRate.objects.order_by(*PriceRate._meta.ordering))
    )


def price_list(
    *, provider: str | None = None, model: str | None = None, mode: str | None = None,
    at: datetime | None = None,
) -> QuerySet[ModelPrice]:  # fmt: skip
    """Price rows; with `at`, each model's row in force at that instant only."""
    rows = _prices()
    if provider is not None:
        rows = rows.filter(provider=provider)
    if model is not None:
        rows = rows.filter(model=model)
    if mode:
        rows = rows.filter(mode=mode)
    if at is not None:
        later = ModelPrice.objects.filter(model=OuterRef("model"),
                                          effective_from__gt=OuterRef("effective_from"),
                                          effective_from__lte=at)  # fmt: skip
        rows = rows.filter(effective_from__lte=at).filter(~Exists(later))
    return rows


class PricesApi(ManageApi):
    @extend_schema(
        operation_id="manage_prices_list",
        parameters=[
            OpenApiParameter("provider", str),
            OpenApiParameter("model", str),
            OpenApiParameter("mode", str),
            OpenApiParameter(
                "at",
                OpenApiTypes.DATETIME,
                description="Each model's row in force at this instant.",
            ),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("price row"),
    )
    def get(self, request: Request) -> Response:
        params = query(PriceQuerySerializer, request)
        rows = price_list(provider=params.get("provider"), model=params.get("model"),
                          mode=params.get("mode"), at=params.get("at"))  # fmt: skip
        page, next_url = time_keyset_page(request, rows, time_field="effective_from")
        return Response({"results": PriceSerializer(page, many=True).data, "next": next_url})

    @extend_schema(
        operation_id="manage_prices_create",
        request=PriceCreateSerializer,
        responses={201: PriceDetailSerializer},
        description="A new effective-dated row (rows are never edited: a price change is a "
        "new row). The vendor's rules of the day are frozen with it.",
    )
    def post(self, request: Request) -> Response:
        serializer = PriceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            price = price_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise field_errors(exc) from None
        except IntegrityError:  # the same model and instant written at the same moment
            raise exceptions.ValidationError(
                {"effective_from": ["This model has a price starting at this instant."]}
            ) from None
        price = _prices().get(pk=price.pk)
        price.used = False  # type: ignore[attr-defined]
        return Response(PriceDetailSerializer(price).data, status=status.HTTP_201_CREATED)


class PriceDetailApi(ManageApi):
    @extend_schema(operation_id="manage_prices_retrieve", responses=PriceDetailSerializer)
    def get(self, request: Request, price_id: int) -> Response:
        price = get_object_or_404(_prices(), id=price_id)
        price.used = price_is_used(price=price)  # type: ignore[attr-defined]
        return Response(PriceDetailSerializer(price).data)

    @extend_schema(
        operation_id="manage_prices_destroy",
        responses={204: None, 409: OpenApiResponse(description="The row has priced events.")},
    )
    def delete(self, request: Request, price_id: int) -> Response:
        try:
            price_delete(price=get_object_or_404(ModelPrice, id=price_id))
        except PriceInUse:
            return Response(
                {"detail": "This price has priced events and never changes; a price change is "
                           "a new row."},
                status=status.HTTP_409_CONFLICT,
            )  # fmt: skip
        return Response(status=status.HTTP_204_NO_CONTENT)


class PriceHistoryApi(ManageApi):
    @extend_schema(
        operation_id="manage_prices_history",
        parameters=[OpenApiParameter("model", str, required=True), *PAGE_PARAMETERS],
        responses=page_response("price row with `used`"),
        description="Every effective-dated row of one model, newest first.",
    )
    def get(self, request: Request) -> Response:
        params = query(PriceHistoryQuerySerializer, request)
        rows = price_list(model=params["model"])
        if not rows.exists():
            raise exceptions.NotFound(f"No price for {params['model']}.")
        rows = prices_with_use(rows)
        page, next_url = time_keyset_page(request, rows, time_field="effective_from")
        return Response({"results": PriceDetailSerializer(page, many=True).data,
                         "next": next_url})  # fmt: skip


PRICE_FILE_HELP = "Expected a JSON object of model name -> price entry (LiteLLM's map)."


class PriceImportApi(ManageApi):
    """Import LiteLLM's `model_prices_and_context_window.json`, as `manage.py
    import_prices` does: the body itself (JSON), or a multipart upload in `file`."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="manage_prices_import",
        parameters=[
            OpenApiParameter(
                "effective_from",
                OpenApiTypes.DATETIME,
                description="When changed prices start (default: now).",
            ),
            OpenApiParameter("show_skipped", bool),
        ],  # fmt: skip
        request={
            "application/json": OpenApiTypes.OBJECT,
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
        },
        responses={
            200: PriceImportResultSerializer,
            409: OpenApiResponse(description="Another import wrote the same rows; retry."),
            413: OpenApiResponse(description="The file is too large."),
        },
    )
    def post(self, request: Request) -> Response:
        params = query(PriceImportQuerySerializer, request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.content_type.split(";")[0].strip().lower() == "application/json":
            field, source = "non_field_errors", "litellm api"
            try:
                content = request.body
            except RequestDataTooBig:
                return _too_large(limit)
        else:
            content, source = self._upload(request, limit)
            if content is None:
                return _too_large(limit)
            field = "file"
        try:
            data = parse_price_file(content)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ValidationError({field: [f"Not valid JSON: {exc}"[:300]]}) from None
        if not isinstance(data, dict):
            raise exceptions.ValidationError({field: [PRICE_FILE_HELP]})
        effective_from = params.get("effective_from") or timezone.now()
        try:
            result = prices_import(data=data, effective_from=effective_from, source=source)
        except IntegrityError:
            return Response({"detail": "Another import wrote the same prices; retry."},
                            status=status.HTTP_409_CONFLICT)  # fmt: skip
        body: dict[str, Any] = {
            "entries": len(data),
            "effective_from": effective_from,
            "created": result.created,
            "changed": result.changed,
            "unchanged": result.unchanged,
            "skipped": len(result.skipped),
            "reasons": [{"reason": r, "count": n} for r, n in price_import_reasons(result)],
        }
        if params["show_skipped"]:
            body["skipped_entries"] = dict(sorted(result.skipped.items()))
        return Response(PriceImportResultSerializer(body).data)

    @staticmethod
    def _upload(request: Request, limit: int) -> tuple[bytes | None, str]:
        try:
            form = request.data
        except RequestDataTooBig:
            return None, ""
        unknown = sorted(set(form.keys()) - {"file"})
        errors = {name: ["Unknown field."] for name in unknown}
        upload = request.FILES.get("file")
        if upload is None:
            errors["file"] = ["Upload the price file in this field."]
        if errors:
            raise exceptions.ValidationError(errors)
        if upload.size > limit:
            return None, ""
        return upload.read(), f"litellm api upload {upload.name}"[:200]


def _too_large(limit: int) -> Response:
    return Response({"detail": f"The price file is larger than {limit} bytes."},
                    status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
