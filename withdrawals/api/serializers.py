from rest_framework import serializers

from common.fields import MoneyInputField, StrictIntegerField, TextInputField
from withdrawals.models import Withdrawal, WithdrawalEvent


class WithdrawalInputSerializer(serializers.Serializer):
    amount = MoneyInputField(help_text="USD taken from the passive wallet (whole cents); the fee is deducted "
                                       "from it.")
    destination = TextInputField(max_length=128, help_text="The address to pay to (for USDT-TRC20: "
                                                           "T + 33 base58 characters).")
    method = serializers.ChoiceField(choices=Withdrawal.Method.choices, default=Withdrawal.Method.USDT_TRC20)


class WithdrawalEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = WithdrawalEvent
        fields = ["status", "message", "created_at"]
        read_only_fields = fields


class WithdrawalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Withdrawal
        fields = ["id", "method", "destination", "amount", "fee", "net_amount", "status", "tx_ref", "reason",
                  "created_at", "approved_at", "paid_at", "rejected_at", "cancelled_at"]
        read_only_fields = fields


class WithdrawalDetailSerializer(WithdrawalSerializer):
    events = WithdrawalEventSerializer(many=True, read_only=True)

    class Meta(WithdrawalSerializer.Meta):
        fields = [*WithdrawalSerializer.Meta.fields, "events"]
        read_only_fields = fields


class StaffWithdrawalSerializer(WithdrawalSerializer):
    member_id = StrictIntegerField(source="user_id", read_only=True)
    member_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta(WithdrawalSerializer.Meta):
        fields = ["id", "member_id", "member_email", *WithdrawalSerializer.Meta.fields[1:]]
        read_only_fields = fields


class MemberFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Withdrawal.Status.choices, required=False)


class StaffFilterSerializer(MemberFilterSerializer):
    method = serializers.ChoiceField(choices=Withdrawal.Method.choices, required=False)


class RejectInputSerializer(serializers.Serializer):
    reason = TextInputField(max_length=255, multiline=True, help_text="Shown to the member.")


class MarkPaidInputSerializer(serializers.Serializer):
    tx_ref = TextInputField(max_length=128, help_text="The payment's transaction reference (hash).")
