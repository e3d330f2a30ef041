from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ApiErrorSerializer
from common.permissions import staff_with
from purchases.api import serializers as s
from purchases.models import Purchase
from purchases.selectors import projects_for_sale, purchases_for, refund_preview
from purchases.services import purchase_create_with_status, purchase_refund

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Send the same key when retrying: the purchase is made once and the retry "
                "returns it (HTTP 200). The same key with another option or packs is refused "
                "(HTTP 422, code `idempotency_conflict`).")


class ProjectListView(ListAPIView):
    serializer_class = s.ProjectSerializer
    pagination_class = None

    @extend_schema(tags=["projects"], summary="Projects and their options for sale")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return projects_for_sale()


class PurchaseListCreateView(ListAPIView):
    serializer_class = s.PurchaseSerializer

    @extend_schema(parameters=[s.PurchaseFilterSerializer], tags=["purchases"], summary="My purchases")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = s.PurchaseFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return purchases_for(user=self.request.user, kind=filters.validated_data.get("kind"))

    @extend_schema(request=s.PurchaseInputSerializer,
                   responses={201: s.PurchaseSerializer, 200: s.PurchaseSerializer},
                   parameters=[IDEMPOTENCY_HEADER], tags=["purchases"],
                   summary="Buy packs with my active wallet")
    def post(self, request):
        data = s.PurchaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        purchase, created = purchase_create_with_status(
            user=request.user, option=data.validated_data["option"], packs=data.validated_data["packs"],
            idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(s.PurchaseSerializer(purchase).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class PurchaseDetailView(RetrieveAPIView):
    serializer_class = s.PurchaseSerializer

    @extend_schema(tags=["purchases"], summary="One of my purchases")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return purchases_for(user=self.request.user)


class PurchaseRefundView(APIView):
    """Staff: refund any member's purchase (money-lifecycle §2)."""

    permission_classes = [staff_with(write="purchases.add_refund")]

    @extend_schema(
        request=s.RefundInputSerializer,
        responses={201: s.RefundResultSerializer,
                   400: OpenApiResponse(ApiErrorSerializer,
                                        description="Not refundable (`not_refundable`: a bonus auto-purchase) or bad "
                                                    "input."),
                   403: OpenApiResponse(ApiErrorSerializer, description="Staff only."),
                   404: OpenApiResponse(ApiErrorSerializer, description="No such purchase."),
                   409: OpenApiResponse(ApiErrorSerializer, description="Already refunded (`already_refunded`).")},
        tags=["purchases"], summary="Refund a purchase (staff)",
        description="A full refund: the price back to the buyer's active wallet (regular purchases), and — "
                    "after the commit, exactly once — volumes, bonuses (clawback), options bonuses, pioneer "
                    "status and pack-sale revenue taken back. `taken_back` lists what is taken back from whom; "
                    "`clawback_done` says whether mlm's part has already run.")
    def post(self, request, pk):
        data = s.RefundInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        purchase = get_object_or_404(Purchase, pk=pk)
        refund = purchase_refund(purchase=purchase, reason=data.validated_data["reason"], refunded_by=request.user)
        return Response({"refund": s.RefundSerializer(refund).data,
                         "taken_back": s.RefundPreviewSerializer(refund_preview(purchase=purchase)).data},
                        status=status.HTTP_201_CREATED)
