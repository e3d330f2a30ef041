"""Withdrawals over the API: members request, list and cancel their own; staff work the queue.
Thin: validate, call a service or selector, shape the output."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import ApiErrorSerializer
from common.permissions import staff_with
from withdrawals import selectors, services
from withdrawals.api import serializers as s

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Send the same key (≤ 100 printable ASCII characters) when retrying: the request is made once "
                "and the retry returns it (HTTP 200). The same key with another body → 422.")
BAD = OpenApiResponse(ApiErrorSerializer, description="Invalid input: nothing was written.")
NOT_FOUND = OpenApiResponse(ApiErrorSerializer, description="No such withdrawal (or not yours).")
CONFLICT = OpenApiResponse(ApiErrorSerializer, description="The withdrawal's status does not allow it (code "
                                                          "`invalid_transition`); nothing was written.")
REUSED_KEY = OpenApiResponse(ApiErrorSerializer, description="The Idempotency-Key was used with a different body "
                                                            "(code `idempotency_conflict`).")
FORBIDDEN = OpenApiResponse(ApiErrorSerializer, description="Staff only.")


class MyWithdrawalListCreateView(ListAPIView):
    serializer_class = s.WithdrawalSerializer

    @extend_schema(parameters=[s.MemberFilterSerializer], tags=["withdrawals"], summary="My withdrawals")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = s.MemberFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.withdrawals_for(user=self.request.user, status=filters.validated_data.get("status"))

    @extend_schema(request=s.WithdrawalInputSerializer,
                   responses={201: s.WithdrawalSerializer,
                              200: OpenApiResponse(s.WithdrawalSerializer, description="A retry with the same "
                                                                                       "Idempotency-Key: the first "
                                                                                       "request."),
                              400: BAD, 422: REUSED_KEY},
                   parameters=[IDEMPOTENCY_HEADER], tags=["withdrawals"],
                   summary="Withdraw from my passive wallet (the amount is reserved at once)")
    def post(self, request):
        data = s.WithdrawalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        withdrawal, created = services.withdrawal_request_with_status(
            user=request.user, amount=v["amount"], destination=v["destination"], method=v["method"],
            idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(s.WithdrawalSerializer(withdrawal).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MyWithdrawalDetailView(RetrieveAPIView):
    serializer_class = s.WithdrawalDetailSerializer
    lookup_url_kwarg = "id"

    @extend_schema(responses={200: s.WithdrawalDetailSerializer, 404: NOT_FOUND}, tags=["withdrawals"],
                   summary="One of my withdrawals, with its history")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.withdrawals_for(user=self.request.user).prefetch_related("events")


class MyWithdrawalCancelView(APIView):
    @extend_schema(request=None, responses={200: s.WithdrawalSerializer, 404: NOT_FOUND, 409: CONFLICT},
                   tags=["withdrawals"], summary="Cancel my withdrawal while it is still requested (money back)")
    def post(self, request, id):
        withdrawal = get_object_or_404(selectors.withdrawals_for(user=request.user), pk=id)
        withdrawal = services.withdrawal_cancel(withdrawal=withdrawal)
        return Response(s.WithdrawalSerializer(withdrawal).data)


class StaffView(APIView):
    """Approve, reject, mark paid: what the admin's queue asks for each."""

    permission_classes = [staff_with(write="withdrawals.change_withdrawal")]


class StaffWithdrawalListView(ListAPIView):
    permission_classes = [staff_with(read="withdrawals.view_withdrawal")]
    serializer_class = s.StaffWithdrawalSerializer

    @extend_schema(parameters=[s.StaffFilterSerializer], tags=["withdrawals (staff)"],
                   summary="The withdrawal queue, oldest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = s.StaffFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.withdrawal_queue(status=filters.validated_data.get("status"),
                                          method=filters.validated_data.get("method"))


def _staff_responses():
    return {200: s.StaffWithdrawalSerializer, 400: BAD, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT}


class StaffApproveView(StaffView):
    permission_classes = [staff_with(write="withdrawals.approve_withdrawal")]

    @extend_schema(request=None, responses=_staff_responses(), tags=["withdrawals (staff)"],
                   summary="Approve a requested withdrawal")
    def post(self, request, id):
        withdrawal = services.withdrawal_approve(withdrawal=get_object_or_404(selectors.withdrawal_queue(), pk=id),
                                                 approved_by=request.user)
        return Response(s.StaffWithdrawalSerializer(withdrawal).data)


class StaffRejectView(StaffView):
    @extend_schema(request=s.RejectInputSerializer, responses=_staff_responses(), tags=["withdrawals (staff)"],
                   summary="Reject a requested or approved withdrawal (the amount goes back)")
    def post(self, request, id):
        withdrawal = get_object_or_404(selectors.withdrawal_queue(), pk=id)
        data = s.RejectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_reject(withdrawal=withdrawal, reason=data.validated_data["reason"],
                                                rejected_by=request.user)
        return Response(s.StaffWithdrawalSerializer(withdrawal).data)


class StaffMarkPaidView(StaffView):
    permission_classes = [staff_with(write="withdrawals.pay_withdrawal")]

    @extend_schema(request=s.MarkPaidInputSerializer, responses=_staff_responses(), tags=["withdrawals (staff)"],
                   summary="Mark an approved withdrawal paid, with the transaction reference")
    def post(self, request, id):
        withdrawal = get_object_or_404(selectors.withdrawal_queue(), pk=id)
        data = s.MarkPaidInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = services.withdrawal_mark_paid(withdrawal=withdrawal, tx_ref=data.validated_data["tx_ref"],
                                                   paid_by=request.user)
        return Response(s.StaffWithdrawalSerializer(withdrawal).data)
