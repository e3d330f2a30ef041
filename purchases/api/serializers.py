from rest_framework import serializers

from common.fields import StrictDecimalField, StrictIntegerField, TextInputField
from purchases.models import Option, Project, Purchase, Refund
from purchases.services import MAX_PACKS


class OptionSerializer(serializers.ModelSerializer):
    unit_price = StrictDecimalField(max_digits=28, decimal_places=8, read_only=True)

    class Meta:
        model = Option
        fields = ["id", "name", "pack_shares", "pack_price", "unit_price", "is_active"]
        read_only_fields = fields


class ProjectSerializer(serializers.ModelSerializer):
    options = OptionSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "options"]
        read_only_fields = fields


class PurchaseInputSerializer(serializers.Serializer):
    option = StrictIntegerField(help_text="The option's id.")
    packs = StrictIntegerField(min_value=1, max_value=MAX_PACKS, default=1)


class PurchaseSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    option_name = serializers.CharField(source="option.name", read_only=True)

    class Meta:
        model = Purchase
        fields = ["id", "project", "option", "option_name", "kind", "packs", "shares", "price",
                  "created_at", "refunded_at"]
        read_only_fields = fields


class PurchaseFilterSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Purchase.Kind.choices, required=False)


# --- refunds (staff) -------------------------------------------------------------------------

MONEY = {"max_digits": 20, "decimal_places": 8}


class RefundInputSerializer(serializers.Serializer):
    reason = TextInputField(max_length=255, required=False, allow_blank=True, default="", multiline=True,
                            help_text="Why (kept with the refund).")


class RefundSerializer(serializers.ModelSerializer):
    refunded_by = serializers.EmailField(source="refunded_by.email", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Refund
        fields = ["id", "purchase", "amount", "reason", "refunded_by", "created_at"]
        read_only_fields = fields


class WalletCreditSerializer(serializers.Serializer):
    user_id = StrictIntegerField()
    email = serializers.EmailField()
    wallet = serializers.CharField()
    amount = StrictDecimalField(**MONEY)


class VolumeTakenBackSerializer(serializers.Serializer):
    user_id = StrictIntegerField()
    email = serializers.CharField()
    volume = serializers.ChoiceField(choices=["pv", "monthly_pv", "fv"])
    month = serializers.DateField(allow_null=True)
    amount = StrictDecimalField(**MONEY)


class BonusTakenBackSerializer(serializers.Serializer):
    bonus_id = StrictIntegerField()
    user_id = StrictIntegerField()
    email = serializers.CharField()
    kind = serializers.CharField()
    status = serializers.CharField(help_text="The bonus's status now.")
    amount = StrictDecimalField(**MONEY)
    action = serializers.ChoiceField(choices=["cancel", "reverse", "revoke", "none"],
                                     help_text="cancel a pending bonus; reverse a paid cash bonus (passive debit, "
                                               "the rest as clawback debt); revoke an options bonus and its "
                                               "auto-purchase; none: already taken back.")
    debit = StrictDecimalField(**MONEY, help_text="reverse: what the passive balance covers now.")
    debt = StrictDecimalField(**MONEY, help_text="reverse: what becomes clawback debt.")
    granted_purchase_id = StrictIntegerField(allow_null=True)


class PioneerTakenBackSerializer(serializers.Serializer):
    user_id = StrictIntegerField()
    email = serializers.CharField()
    action = serializers.ChoiceField(choices=["withdraw", "keep"])
    other_purchase_id = StrictIntegerField(allow_null=True)


class RevenueReversalSerializer(serializers.Serializer):
    revenue_id = StrictIntegerField()
    amount = StrictDecimalField(**MONEY)
    currency = serializers.CharField()
    amount_zar = StrictDecimalField(**MONEY)
    reversed = serializers.BooleanField()
    reversal_id = StrictIntegerField(allow_null=True)


class RefundPreviewSerializer(serializers.Serializer):
    """What a refund takes back, from whom (`purchases.selectors.refund_preview`)."""

    purchase_id = StrictIntegerField()
    buyer_id = StrictIntegerField()
    buyer_email = serializers.EmailField()
    kind = serializers.CharField()
    price = StrictDecimalField(**MONEY)
    refunded_at = serializers.DateTimeField(allow_null=True)
    wallet_credit = WalletCreditSerializer(allow_null=True)
    mlm_processed = serializers.BooleanField(required=False,
                                             help_text="False: refunded before mlm processed it (nothing paid).")
    clawback_done = serializers.BooleanField(required=False,
                                             help_text="False: mlm's clawback is still queued (it runs after the "
                                                       "refund's commit).")
    volumes = VolumeTakenBackSerializer(many=True)
    bonuses = BonusTakenBackSerializer(many=True)
    pioneer = PioneerTakenBackSerializer(allow_null=True)
    revenue = RevenueReversalSerializer(allow_null=True)


class RefundResultSerializer(serializers.Serializer):
    refund = RefundSerializer()
    taken_back = RefundPreviewSerializer()
