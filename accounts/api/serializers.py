from rest_framework import serializers

from accounts.models import LedgerEntry, User, Wallet
from common.fields import MoneyInputField, StrictDecimalField, StrictIntegerField, TextInputField


class RegisterInputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, min_length=8, style={"input_type": "password"})
    first_name = TextInputField(required=False, allow_blank=True, max_length=150, default="")
    last_name = TextInputField(required=False, allow_blank=True, max_length=150, default="")
    referral_code = TextInputField(required=False, allow_blank=True, max_length=16, default="",
                                   help_text="The sponsor's referral code; empty places "
                                             "the member under the company root.")


class TokenInputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, style={"input_type": "password"})


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()


class MeSerializer(serializers.ModelSerializer):
    sponsor = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "first_name", "last_name", "referral_code", "sponsor",
                  "balance_active", "balance_passive", "date_joined"]
        read_only_fields = fields

    def get_sponsor(self, user) -> str | None:
        sponsor = user.sponsor
        if sponsor is None or sponsor.is_system_root:
            return None
        return sponsor.email


class RegisterOutputSerializer(serializers.Serializer):
    user = MeSerializer()
    token = serializers.CharField()


class LedgerEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = LedgerEntry
        fields = ["id", "wallet", "amount", "balance_after", "reason", "description", "created_at"]
        read_only_fields = fields


class LedgerFilterSerializer(serializers.Serializer):
    wallet = serializers.ChoiceField(choices=Wallet.choices, required=False)


class TransferInputSerializer(serializers.Serializer):
    amount = MoneyInputField(help_text="USD moved from the passive to the active wallet; the transfer bonus "
                                       "(a setting, 2% by default) is credited on top.")


class MemberTransferInputSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, help_text="The receiver's e-mail…")
    referral_code = TextInputField(required=False, max_length=16, help_text="…or referral code.")
    wallet = serializers.ChoiceField(choices=Wallet.choices, default=Wallet.ACTIVE,
                                     help_text="My wallet to pay from; the receiver is credited on the active one.")
    amount = MoneyInputField()

    def validate(self, attrs):
        if bool(attrs.get("email")) == bool(attrs.get("referral_code")):
            raise serializers.ValidationError("Name the receiver by email or by referral_code (one of them).",
                                              code="receiver_required")
        return attrs


class MemberTransferOutputSerializer(serializers.Serializer):
    receiver = serializers.EmailField(help_text="The receiver's e-mail.")
    wallet = serializers.CharField()
    amount = StrictDecimalField(max_digits=20, decimal_places=8)
    entries = LedgerEntrySerializer(many=True, help_text="My side of the transfer (the debit).")


class ServiceDepositInputSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False)
    member_id = StrictIntegerField(required=False)
    amount = MoneyInputField()
    reference = TextInputField(max_length=150, help_text="The payment's reference; the same "
                                                          "reference twice deposits once.")

    def validate(self, attrs):
        if not attrs.get("email") and not attrs.get("member_id"):
            raise serializers.ValidationError("Give the member's email or member_id.")
        return attrs


class DepositOutputSerializer(serializers.Serializer):
    id = StrictIntegerField()
    member_id = StrictIntegerField(source="user_id")
    amount = StrictDecimalField(max_digits=20, decimal_places=8)
    balance_after = StrictDecimalField(max_digits=20, decimal_places=8)
    reference = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_reference(self, entry) -> str:
        return entry.idempotency_key.removeprefix("deposit:")
