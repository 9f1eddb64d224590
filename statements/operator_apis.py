"""Management API of statements: the vendor bills reconciliation compares with."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from finops.operator_apis import PAGE_PARAMETERS, ManageApi, page_response, query

from .models import VendorBill
from .operator_serializers import (
    VendorBillCreateSerializer,
    VendorBillQuerySerializer,
    VendorBillSerializer,
)
from .services import vendor_bill_create


class VendorBillsApi(ManageApi):
    @extend_schema(
        operation_id="manage_vendor_bills_list",
        parameters=[
            OpenApiParameter("provider", str),
            OpenApiParameter("period", str, description="YYYY-MM"),
            *PAGE_PARAMETERS,
        ],  # fmt: skip
        responses=page_response("vendor bill"),
    )
    def get(self, request: Request) -> Response:
        params = query(VendorBillQuerySerializer, request)
        return self.list_page(request, VendorBill.objects.all(), VendorBillSerializer,
                              params=params, filters=("provider", "period"))  # fmt: skip

    @extend_schema(
        operation_id="manage_vendor_bills_create",
        request=VendorBillCreateSerializer,
        responses={201: VendorBillSerializer},
        description="What a provider invoiced for a month; reconciliation sums every bill "
        "of a provider, month and currency.",
    )
    def post(self, request: Request) -> Response:
        serializer = VendorBillCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bill = vendor_bill_create(**serializer.validated_data)
        return Response(VendorBillSerializer(bill).data, status=status.HTTP_201_CREATED)


class VendorBillDetailApi(ManageApi):
    @extend_schema(operation_id="manage_vendor_bills_retrieve", responses=VendorBillSerializer)
    def get(self, request: Request, bill_id: int) -> Response:
        return Response(VendorBillSerializer(get_object_or_404(VendorBill, id=bill_id)).data)
