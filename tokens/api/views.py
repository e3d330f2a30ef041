"""The tokens API: revenue from services (API key); settings, history, metrics and buy-orders
for staff. Thin: validate, call a service or selector, shape the output."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ApiErrorSerializer
from common.permissions import HasAPIKey, staff_with
from tokens import selectors, services
from tokens.api import serializers as s

ERRORS = {400: OpenApiResponse(ApiErrorSerializer, description="Invalid input: nothing was written."),
          403: OpenApiResponse(ApiErrorSerializer, description="Not allowed.")}


class RevenueView(APIView):
    """For payment and subscription services: authenticated by an API key, not a member login."""

    authentication_classes: list = []
    permission_classes = [HasAPIKey]

    @extend_schema(request=s.RevenueInputSerializer,
                   responses={201: s.RevenueSerializer,
                              200: OpenApiResponse(s.RevenueSerializer, description="Already recorded: the first "
                                                                                    "record."), **ERRORS},
                   tags=["service"], summary="Record revenue (API key)", auth=[{"ApiKeyAuth": []}])
    def post(self, request):
        data = s.RevenueInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        record, created = services.revenue_track_with_status(source=v["source"], amount=v["amount"],
                                                             currency=v["currency"],
                                                             external_ref=v.get("external_ref"))
        return Response(s.RevenueSerializer(record).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class StaffView(APIView):
    """Staff who may view buy-orders (as in the admin)."""

    permission_classes = [staff_with(read="tokens.view_buyorder")]


class SettingsView(StaffView):
    permission_classes = [staff_with(read="tokens.view_buyorderconfig", write="tokens.change_buyorderconfig")]

    @extend_schema(responses={200: s.ConfigSerializer, 403: ERRORS[403]}, tags=["buy-orders"],
                   summary="The buy-order settings")
    def get(self, request):
        return Response(s.ConfigSerializer(selectors.buy_order_config()).data)

    @extend_schema(request=s.ConfigUpdateSerializer, responses={200: s.ConfigSerializer, **ERRORS},
                   tags=["buy-orders"], summary="Change the buy-order settings (audited; the schedule follows)")
    def patch(self, request):
        data = s.ConfigUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        config = services.buy_order_config_update(changed_by=request.user, **data.validated_data)
        return Response(s.ConfigSerializer(config).data)


class HistoryView(StaffView):
    @extend_schema(parameters=[s.HistoryFilterSerializer], responses={200: s.HistorySerializer, **ERRORS},
                   tags=["buy-orders"], summary="Buy-order history, newest first (keyset `cursor` pages at any depth)")
    def get(self, request):
        filters = s.HistoryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        v = filters.validated_data
        page = selectors.buy_order_history_page(limit=v["limit"], offset=v["offset"], cursor=v.get("cursor"),
                                                status=v.get("status"), date_from=v.get("date_from"),
                                                date_to=v.get("date_to"))
        return Response(s.HistorySerializer({"count": page.count, "count_exact": page.count_exact,
                                             "limit": v["limit"], "offset": v["offset"],
                                             "next_cursor": page.next_cursor, "results": page.rows}).data)


class MetricsView(StaffView):
    @extend_schema(responses={200: s.MetricsSerializer, 403: ERRORS[403]}, tags=["buy-orders"],
                   summary="Buy-order metrics")
    def get(self, request):
        return Response(s.MetricsSerializer(selectors.buy_order_metrics()).data)


class AvailableRevenueView(StaffView):
    @extend_schema(responses={200: s.AvailableRevenueSerializer, 403: ERRORS[403]}, tags=["buy-orders"],
                   summary="Revenue available to the next buy-order")
    def get(self, request):
        config = selectors.buy_order_config()
        return Response(s.AvailableRevenueSerializer({
            "available_revenue": selectors.available_revenue(config=config),
            "unspent_revenue": selectors.unspent_revenue(),
            "revenue_percentage": config.revenue_percentage}).data)


class PreviewView(StaffView):
    @extend_schema(responses={200: s.PreviewSerializer, 403: ERRORS[403]}, tags=["buy-orders"],
                   summary="What a buy-order would do now (changes nothing)")
    def get(self, request):
        return Response(s.PreviewSerializer(services.buy_order_preview()).data)


# Refusals and deferrals are conflicts with the state (409: nothing was spent; a deferral is tried
# again by the next tick); chain failures are a bad gateway (502).
REFUSALS = {"disabled", "below_minimum", "already_ran",
            "twap_unavailable", "price_deviation", "gas_above_cap", "pool_too_shallow"}


class ExecuteView(StaffView):
    permission_classes = [staff_with(write="tokens.add_buyorder")]  # spends revenue: as the admin's "Run"
    @extend_schema(request=s.ExecuteInputSerializer,
                   responses={200: s.ExecuteResultSerializer, 400: ERRORS[400], 403: ERRORS[403],
                              409: OpenApiResponse(s.ExecuteErrorSerializer, description="Refused: nothing bought."),
                              502: OpenApiResponse(s.ExecuteErrorSerializer, description="The chain failed.")},
                   tags=["buy-orders"], summary="Execute a buy-order now")
    def post(self, request):
        data = s.ExecuteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = services.buy_order_run(amount=v.get("amount"), price_per_token=v.get("price_per_token"),
                                        executed_by=request.user)
        body = s.ExecuteResultSerializer(result.as_dict()).data
        if result.success:
            return Response(body)
        if result.code in REFUSALS:
            code = status.HTTP_409_CONFLICT
        else:
            code = status.HTTP_502_BAD_GATEWAY
        return Response({"message": result.error, "code": result.code, "errors": {}, "result": body}, status=code)
