"""Member API of the compensation plan: thin views over selectors and services."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from mlm import selectors
from mlm.api.serializers import (
    BonusFilterIn,
    BonusOut,
    NotificationFilterIn,
    NotificationOut,
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
                                     month=params.validated_data.get("month"))

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
