"""Management API of the console: retirement reviews and their decisions."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from finops.operator_apis import PAGE_PARAMETERS, ManageApi, page_response, query

from .models import RetirementReview
from .operator_serializers import (
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
