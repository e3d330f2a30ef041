"""Members' own account, registration and tokens; the payment service's deposits."""

from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts.api import serializers as s
from accounts.models import User
from accounts.selectors import ledger_for, member_by_email_or_referral_code, user_by_referral_code
from accounts.services import (
    member_create,
    wallet_deposit_with_status,
    wallet_transfer_to_active_with_status,
    wallet_transfer_to_member_with_status,
)
from common.api import ApiErrorSerializer, error_response
from common.errors import field_error
from common.permissions import HasAPIKey


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AnonRateThrottle]

    @extend_schema(request=s.RegisterInputSerializer, responses={201: s.RegisterOutputSerializer},
                   tags=["auth"], summary="Register a member (with a sponsor's referral code)")
    def post(self, request):
        data = s.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        sponsor = None
        if v["referral_code"]:
            sponsor = user_by_referral_code(v["referral_code"])
            if sponsor is None:
                raise field_error("referral_code", "Unknown referral code.", code="unknown_referral_code")
        with transaction.atomic():
            user = member_create(email=v["email"], password=v["password"], sponsor=sponsor,
                                 first_name=v["first_name"], last_name=v["last_name"],
                                 validate_password_strength=True)
            token = Token.objects.create(user=user)
        return Response(s.RegisterOutputSerializer({"user": user, "token": token.key}).data,
                        status=status.HTTP_201_CREATED)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AnonRateThrottle]

    @extend_schema(request=s.TokenInputSerializer, responses={200: s.TokenOutputSerializer},
                   tags=["auth"], summary="Obtain an API token")
    def post(self, request):
        data = s.TokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, email=data.validated_data["email"].lower(),
                            password=data.validated_data["password"])
        if user is None or user.is_system_root:
            return error_response("Wrong e-mail or password.", code="authentication_failed")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, tags=["me"], summary="My profile and balances")
    def get(self, request):
        user = User.objects.select_related("sponsor").get(pk=request.user.pk)
        return Response(s.MeSerializer(user).data)


class LedgerView(ListAPIView):
    serializer_class = s.LedgerEntrySerializer

    @extend_schema(parameters=[s.LedgerFilterSerializer], tags=["me"], summary="My ledger")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = s.LedgerFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return ledger_for(user=self.request.user, wallet=filters.validated_data.get("wallet"))


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Send the same key (≤ 100 printable ASCII characters) when retrying: the transfer is made once "
                "and the retry returns it (HTTP 200). The same key with another body → 422.")
TRANSFER_ERRORS = {
    400: OpenApiResponse(ApiErrorSerializer, description="Invalid input or a short balance (code "
                                                        "`insufficient_funds`): nothing was written."),
    422: OpenApiResponse(ApiErrorSerializer, description="The Idempotency-Key was used with a different body "
                                                        "(code `idempotency_conflict`)."),
}


class TransferView(APIView):
    @extend_schema(request=s.TransferInputSerializer,
                   responses={201: s.LedgerEntrySerializer(many=True),
                              200: OpenApiResponse(s.LedgerEntrySerializer(many=True),
                                                   description="A retry with the same Idempotency-Key: the first "
                                                               "transfer's rows."),
                              **TRANSFER_ERRORS},
                   parameters=[IDEMPOTENCY_HEADER], tags=["me"],
                   summary="Move money from my passive wallet to my active wallet (with the transfer bonus)")
    def post(self, request):
        data = s.TransferInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows, created = wallet_transfer_to_active_with_status(
            user=request.user, amount=data.validated_data["amount"],
            idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(s.LedgerEntrySerializer(rows, many=True).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MemberTransferView(APIView):
    @extend_schema(request=s.MemberTransferInputSerializer,
                   responses={201: s.MemberTransferOutputSerializer,
                              200: OpenApiResponse(s.MemberTransferOutputSerializer,
                                                   description="A retry with the same Idempotency-Key: the first "
                                                               "transfer."),
                              **TRANSFER_ERRORS},
                   parameters=[IDEMPOTENCY_HEADER], tags=["me"],
                   summary="Send money to another member's active wallet (by e-mail or referral code)")
    def post(self, request):
        data = s.MemberTransferInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        receiver = member_by_email_or_referral_code(email=v.get("email"), referral_code=v.get("referral_code"))
        if receiver is None:
            field = "email" if v.get("email") else "referral_code"
            raise field_error(field, "No member with this e-mail or referral code.", code="unknown_member")
        rows, created = wallet_transfer_to_member_with_status(
            sender=request.user, receiver=receiver, amount=v["amount"], wallet=v["wallet"],
            idempotency_key=request.headers.get("Idempotency-Key"))
        mine = [row for row in rows if row.user_id == request.user.pk]
        return Response(s.MemberTransferOutputSerializer({"receiver": receiver.email, "wallet": v["wallet"],
                                                          "amount": -mine[0].amount, "entries": mine}).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ServiceDepositView(APIView):
    """For the payment service: authenticated by an API key, not a member login."""

    authentication_classes: list = []
    permission_classes = [HasAPIKey]

    @extend_schema(request=s.ServiceDepositInputSerializer,
                   responses={201: s.DepositOutputSerializer, 200: s.DepositOutputSerializer},
                   tags=["service"], summary="Deposit to a member's active wallet (API key)",
                   auth=[{"ApiKeyAuth": []}])
    def post(self, request):
        data = s.ServiceDepositInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        lookup = {"pk": v["member_id"]} if v.get("member_id") else {"email__iexact": v["email"]}
        user = User.objects.filter(is_system_root=False, **lookup).first()
        if user is None:
            raise field_error("member", "Unknown member.", code="unknown_member")
        entry, created = wallet_deposit_with_status(
            user=user, amount=v["amount"], reference=v["reference"],
            description=f"Payment service deposit {v['reference']}")
        return Response(s.DepositOutputSerializer(entry).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
