"""Members' own account, registration and tokens; the payment service's deposits."""

from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts.api import serializers as s
from accounts.models import LedgerEntry, User
from accounts.selectors import ledger_for, user_by_referral_code
from accounts.services import member_create, wallet_deposit, wallet_transfer_to_active
from common.api import error_response
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
                raise ValidationError({"referral_code": "Unknown referral code."})
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


class TransferView(APIView):
    @extend_schema(request=s.TransferInputSerializer, responses={201: s.LedgerEntrySerializer(many=True)},
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                                required=False)],
                   tags=["me"], summary="Move money from my passive wallet to my active wallet")
    def post(self, request):
        data = s.TransferInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = wallet_transfer_to_active(user=request.user, amount=data.validated_data["amount"],
                                         idempotency_key=request.headers.get("Idempotency-Key"))
        return Response(s.LedgerEntrySerializer(rows, many=True).data, status=status.HTTP_201_CREATED)


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
            raise ValidationError({"member": "Unknown member."})
        existed = LedgerEntry.objects.filter(idempotency_key=f"deposit:{v['reference'].strip()}").exists()
        entry = wallet_deposit(user=user, amount=v["amount"], reference=v["reference"],
                               description=f"Payment service deposit {v['reference']}")
        return Response(s.DepositOutputSerializer(entry).data,
                        status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)
