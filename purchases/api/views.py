from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from purchases.api import serializers as s
from purchases.selectors import projects_for_sale, purchases_for
from purchases.services import purchase_create_with_status

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
