"""Member API of the compensation plan: thin views over selectors and services."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import ConflictError
from common.permissions import staff_with
from mlm import selectors, services
from mlm.api.serializers import (
    BonusFilterIn,
    BonusOut,
    MemberPreviewIn,
    MemberPreviewOut,
    NotificationFilterIn,
    NotificationOut,
    PayoutMonthIn,
    PayoutPreviewOut,
    PayoutRunOut,
    StaffPreviewIn,
    StaffPreviewOut,
    SummaryOut,
    TeamIn,
    TeamOut,
)
from mlm.models import Notification


class SummaryView(APIView):
    @extend_schema(responses=SummaryOut, tags=["mlm"], summary="My rank, status and volumes")
    def get(self, request):
        return Response(SummaryOut(selectors.member_summary(user=request.user)).data)


class BonusListView(ListAPIView):
    serializer_class = BonusOut

    def get_queryset(self):
        params = BonusFilterIn(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return selectors.bonuses_for(user=self.request.user, kind=params.validated_data.get("kind"),
                                     month=params.validated_data.get("month"),
                                     status=params.validated_data.get("status"))

    @extend_schema(tags=["mlm"], summary="My bonuses", parameters=[BonusFilterIn])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TeamView(APIView):
    @extend_schema(tags=["mlm"], summary="My direct referrals (branch volumes) and downline",
                   parameters=[TeamIn], responses=TeamOut)
    def get(self, request):
        params = TeamIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        depth = params.validated_data["depth"]
        rows, truncated = selectors.team_downline(user=request.user, depth=depth)
        return Response(TeamOut({"referrals": selectors.direct_referrals(user=request.user), "downline": rows,
                                 "depth": depth, "truncated": truncated}).data)


class NotificationListView(ListAPIView):
    serializer_class = NotificationOut

    def get_queryset(self):
        params = NotificationFilterIn(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return selectors.notifications_for(user=self.request.user, unread=params.validated_data.get("unread"))

    @extend_schema(tags=["mlm"], summary="My notifications", parameters=[NotificationFilterIn])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class NotificationReadView(APIView):
    @extend_schema(tags=["mlm"], summary="Mark one of my notifications read", request=None,
                   responses=NotificationOut,
                   parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)])
    def post(self, request, id):
        n = Notification.objects.filter(user=request.user, pk=id).first()
        if n is None:
            from rest_framework.exceptions import NotFound

            raise NotFound()
        if not n.is_read:
            Notification.objects.filter(pk=n.pk).update(is_read=True)
            n.is_read = True
        return Response(NotificationOut(n).data)


class NotificationReadAllView(APIView):
    @extend_schema(tags=["mlm"], summary="Mark all my notifications read", request=None,
                   responses={200: {"type": "object", "properties": {"updated": {"type": "integer"}}}})
    def post(self, request):
        updated = Notification.objects.filter(user=request.user, is_read=False).update(is_read=True)
        return Response({"updated": updated})


# --- staff: the monthly payout of held bonuses -----------------------------------------------

ERROR = {"type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "string"},
                                          "errors": {"type": "object"}}}


class PayoutRunListView(ListAPIView):
    permission_classes = [staff_with(read="mlm.view_payoutrun")]
    serializer_class = PayoutRunOut

    def get_queryset(self):
        return selectors.payout_runs()

    @extend_schema(tags=["payouts"], summary="Payout runs, newest month first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PayoutPreviewView(APIView):
    permission_classes = [staff_with(read="mlm.view_payoutrun")]

    @extend_schema(tags=["payouts"], summary="What the payout run of a month would pay (changes nothing)",
                   parameters=[PayoutMonthIn], responses={200: PayoutPreviewOut, 400: ERROR})
    def get(self, request):
        params = PayoutMonthIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(PayoutPreviewOut(selectors.payout_preview(month=params.validated_data["month"])).data)


class PayoutRunView(APIView):
    permission_classes = [staff_with(write="mlm.add_payoutrun")]

    @extend_schema(tags=["payouts"], summary="Pay a month's held bonuses now (once per month)",
                   request=PayoutMonthIn,
                   responses={201: PayoutRunOut,
                              400: OpenApiResponse(ERROR, description="Not a month, or a month that has not begun."),
                              409: OpenApiResponse(ERROR, description="The month was already paid out: "
                                                                      "nothing was paid now.")})
    def post(self, request):
        data = PayoutMonthIn(data=request.data)
        data.is_valid(raise_exception=True)
        month = data.validated_data["month"]
        run, created = services.payout_run_with_status(month=month, created_by=request.user)
        if not created:
            message = f"{month:%Y-%m} was already paid out (run #{run.pk}): nothing was paid now."
            raise ConflictError({"month": ConflictError(message, code="already_run")}, code="already_run")
        return Response(PayoutRunOut(run).data, status=status.HTTP_201_CREATED)


# --- preview of a purchase (§11): writes nothing ----------------------------------------------

class MemberPreviewView(APIView):
    @extend_schema(tags=["mlm"], summary="What my purchase would pay (writes nothing)", request=MemberPreviewIn,
                   responses={200: MemberPreviewOut,
                              400: OpenApiResponse(ERROR, description="Unknown option, not for sale, bad packs.")})
    def post(self, request):
        data = MemberPreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        preview = selectors.purchase_preview_member(user=request.user, **data.validated_data)
        return Response(MemberPreviewOut(preview).data)


class StaffPreviewView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(tags=["mlm"], summary="What a purchase by any member would pay, to whom (writes nothing)",
                   request=StaffPreviewIn,
                   responses={200: StaffPreviewOut,
                              400: OpenApiResponse(ERROR, description="Unknown member or option, bad packs, "
                                                                      "price or date.")})
    def post(self, request):
        data = StaffPreviewIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(StaffPreviewOut(selectors.purchase_preview_staff(**data.validated_data)).data)
