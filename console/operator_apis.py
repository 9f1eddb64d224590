"""Management API of the console: retirement reviews and their decisions, the
optimization log (each decision answered with its measured result) and the provisioned
offers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from finops.operator_apis import PAGE_PARAMETERS, ManageApi, field_errors, page_response, query
from finops.pagination import time_keyset_page

from .decisions import (
    decision_create,
    decision_results,
    decision_update,
    provisioned_offer_create,
    provisioned_offer_update,
)
from .models import OptimizationDecision, ProvisionedOffer, RetirementReview
from .operator_serializers import (
    DecisionQuerySerializer,
    OfferQuerySerializer,
    OptimizationDecisionSerializer,
    OptimizationDecisionWriteSerializer,
    ProvisionedOfferSerializer,
    ProvisionedOfferWriteSerializer,
    RetirementReviewSerializer,
    ReviewDecisionSerializer,
    ReviewQuerySerializer,
)
from .reviews import review_decide, review_decision_errors


def _reviews():
    return RetirementReview.objects.select_related("consolidate_into", "decided_by")


class RetirementReviewsApi(ManageApi):
    @extend_schema(
        operation_id="manage_retirement_reviews_list",
        parameters=[
            OpenApiParameter("decision", str, description="Default: open."),
            OpenApiParameter("kind", str),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("retirement review"),
    )
    def get(self, request: Request) -> Response:
        params = query(ReviewQuerySerializer, request)
        return self.list_page(request, _reviews(), RetirementReviewSerializer, params=params,
                              filters=("decision", "kind"), time_field="opened_at")  # fmt: skip


class RetirementReviewDetailApi(ManageApi):
    @extend_schema(
        operation_id="manage_retirement_reviews_retrieve", responses=RetirementReviewSerializer
    )
    def get(self, request: Request, review_id: int) -> Response:
        return Response(
            RetirementReviewSerializer(get_object_or_404(_reviews(), id=review_id)).data
        )


class RetirementReviewDecisionApi(ManageApi):
    @extend_schema(
        operation_id="manage_retirement_reviews_decide",
        request=ReviewDecisionSerializer,
        responses=RetirementReviewSerializer,
        description="Keep, retire (a feature: with its deprecate, throttle and sunset dates) "
        "or consolidate into another feature, as in the admin. A retired or consolidated "
        "feature walks its lifecycle from these dates; a decision may be changed later.",
    )
    def post(self, request: Request, review_id: int) -> Response:
        review = get_object_or_404(_reviews(), id=review_id)
        serializer = ReviewDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dates = {name: data[name] for name in ("deprecate_on", "throttle_on", "sunset_on")}
        errors = review_decision_errors(
            review=review,
            decision=data["decision"],
            consolidate_into=data["consolidate_into"],
            **dates,
        )
        if errors:
            raise exceptions.ValidationError(errors)
        # An API key is no user: decided_by stays empty, decided_at records when.
        review = review_decide(review=review, decision=data["decision"], user=None,
                               now=timezone.now(), consolidate_into=data["consolidate_into"],
                               note=data["note"], **dates)  # fmt: skip
        return Response(RetirementReviewSerializer(review).data)


# --- The optimization log --------------------------------------------------------------

DECISION_RESULT = ('a decision with "result": {"days_after", "calls_before", "cost_before", '
                   '"calls_after", "cost_after", "cost_per_call_before", "cost_per_call_after", '
                   '"expected_monthly_saving", "realized_monthly_saving", "ratio", "status", '
                   '"currency"}')  # fmt: skip


def _decisions() -> QuerySet[OptimizationDecision]:
    return OptimizationDecision.objects.select_related("feature", "created_by")


def _with_results(decisions: list[OptimizationDecision]) -> list[dict[str, Any]]:
    results = decision_results(decisions, timezone.now())
    return [OptimizationDecisionSerializer(r.decision).data | {"result": r.as_json()}
            for r in results]  # fmt: skip


def _written(write: Any, serializer: Any, **kw: Any) -> Any:
    """The service's write, its model validation errors as field-level 400s."""
    serializer.is_valid(raise_exception=True)
    try:
        return write(**kw, **serializer.validated_data)
    except DjangoValidationError as exc:
        raise field_errors(exc) from None


class OptimizationDecisionsApi(ManageApi):
    @extend_schema(
        operation_id="manage_optimization_decisions_list",
        parameters=[
            OpenApiParameter("lever", str),
            OpenApiParameter("feature", str, description="A feature key."),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response(DECISION_RESULT),
    )
    def get(self, request: Request) -> Response:
        params = query(DecisionQuerySerializer, request)
        rows = _decisions()
        if params.get("lever"):
            rows = rows.filter(lever=params["lever"])
        if params.get("feature"):
            rows = rows.filter(feature__key=params["feature"])
        page, next_url = time_keyset_page(request, rows, time_field="created_at")
        return Response({"results": _with_results(list(page)), "next": next_url})

    @extend_schema(
        operation_id="manage_optimization_decisions_create",
        request=OptimizationDecisionWriteSerializer,
        responses={201: OpenApiResponse(description=DECISION_RESULT)},
        description="Records a decision (as the admin's Optimization decisions); finops "
        "measures its realized saving from `decided_on` on. An API key is no user: "
        "`created_by` stays null.",
    )
    def post(self, request: Request) -> Response:
        serializer = OptimizationDecisionWriteSerializer(data=request.data)
        decision = _written(decision_create, serializer, user=None)
        return Response(_with_results([decision])[0], status=status.HTTP_201_CREATED)


class OptimizationDecisionDetailApi(ManageApi):
    @extend_schema(
        operation_id="manage_optimization_decisions_retrieve",
        responses={200: OpenApiResponse(description=DECISION_RESULT)},
    )
    def get(self, request: Request, decision_id: int) -> Response:
        return Response(_with_results([get_object_or_404(_decisions(), id=decision_id)])[0])

    @extend_schema(
        operation_id="manage_optimization_decisions_update",
        request=OptimizationDecisionWriteSerializer,
        responses={200: OpenApiResponse(description=DECISION_RESULT)},
    )
    def patch(self, request: Request, decision_id: int) -> Response:
        decision = get_object_or_404(_decisions(), id=decision_id)
        serializer = OptimizationDecisionWriteSerializer(data=request.data, partial=True)
        decision = _written(decision_update, serializer, decision=decision)
        return Response(_with_results([decision])[0])

    @extend_schema(operation_id="manage_optimization_decisions_destroy", responses={204: None})
    def delete(self, request: Request, decision_id: int) -> Response:
        get_object_or_404(OptimizationDecision, id=decision_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Provisioned offers ----------------------------------------------------------------

_DUPLICATE_OFFER = {"model": ["This model has a provisioned offer."]}


def _offer_written(write: Any, serializer: ProvisionedOfferWriteSerializer, **kw: Any) -> Any:
    try:
        return _written(write, serializer, **kw)
    except IntegrityError:  # the same model written at the same moment
        raise exceptions.ValidationError(_DUPLICATE_OFFER) from None


class ProvisionedOffersApi(ManageApi):
    @extend_schema(
        operation_id="manage_provisioned_offers_list",
        parameters=[OpenApiParameter("model", str), *PAGE_PARAMETERS],
        responses=page_response("provisioned offer"),
    )
    def get(self, request: Request) -> Response:
        params = query(OfferQuerySerializer, request)
        return self.list_page(request, ProvisionedOffer.objects.all(),
                              ProvisionedOfferSerializer, params=params, filters=("model",),
                              time_field="updated_at")  # fmt: skip

    @extend_schema(
        operation_id="manage_provisioned_offers_create",
        request=ProvisionedOfferWriteSerializer,
        responses={201: ProvisionedOfferSerializer},
        description="A provisioned-throughput price for a model (one per model): the "
        "savings ledger compares it with the model's on-demand cost.",
    )
    def post(self, request: Request) -> Response:
        serializer = ProvisionedOfferWriteSerializer(data=request.data)
        offer = _offer_written(provisioned_offer_create, serializer)
        return Response(ProvisionedOfferSerializer(offer).data, status=status.HTTP_201_CREATED)


class ProvisionedOfferDetailApi(ManageApi):
    @extend_schema(
        operation_id="manage_provisioned_offers_retrieve", responses=ProvisionedOfferSerializer
    )
    def get(self, request: Request, offer_id: int) -> Response:
        offer = get_object_or_404(ProvisionedOffer, id=offer_id)
        return Response(ProvisionedOfferSerializer(offer).data)

    @extend_schema(
        operation_id="manage_provisioned_offers_update",
        request=ProvisionedOfferWriteSerializer,
        responses=ProvisionedOfferSerializer,
    )
    def patch(self, request: Request, offer_id: int) -> Response:
        offer = get_object_or_404(ProvisionedOffer, id=offer_id)
        serializer = ProvisionedOfferWriteSerializer(data=request.data, partial=True)
        offer = _offer_written(provisioned_offer_update, serializer, offer=offer)
        return Response(ProvisionedOfferSerializer(offer).data)

    @extend_schema(operation_id="manage_provisioned_offers_destroy", responses={204: None})
    def delete(self, request: Request, offer_id: int) -> Response:
        get_object_or_404(ProvisionedOffer, id=offer_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
