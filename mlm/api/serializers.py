from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import User
from common.fields import StrictDecimalField, StrictIntegerField
from mlm.models import Bonus, Notification, PayoutRun, month_parse
from purchases.models import Option
from purchases.services import MAX_PACKS

MONEY = {"max_digits": 20, "decimal_places": 8}


@extend_schema_field({"type": "string", "pattern": r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$", "example": "2025-03"})
class MonthField(serializers.Field):
    """`YYYY-MM` in, the first day of that month (a date) out."""

    default_error_messages = {"invalid_month": "Use YYYY-MM: a month from 1900-01 to 2999-12, e.g. 2025-03 "
                                               "(not {value!r})."}

    def to_internal_value(self, data):
        try:
            return month_parse(data if isinstance(data, str) else "")
        except ValueError:
            self.fail("invalid_month", value=str(data)[:20])

    def to_representation(self, value):
        return f"{value:%Y-%m}"


class SummaryOut(serializers.Serializer):
    rank = serializers.CharField()
    rank_name = serializers.CharField()
    rate = StrictDecimalField(max_digits=7, decimal_places=6)
    is_active = serializers.BooleanField()
    is_pioneer = serializers.BooleanField()
    pv = StrictDecimalField(**MONEY)
    monthly_pv = StrictDecimalField(**MONEY)
    fv = StrictDecimalField(**MONEY)
    tv = StrictDecimalField(**MONEY)
    max_branch = StrictDecimalField(**MONEY)
    cap = StrictDecimalField(**MONEY)
    next_rank = serializers.CharField(allow_null=True)
    gap = StrictDecimalField(**MONEY)
    gap_pv = StrictDecimalField(**MONEY)
    partners_required = StrictIntegerField()
    loyalty_streak = StrictIntegerField(help_text="Consecutive months with a purchase on the Grace Day.")
    is_loyalty_qualified = serializers.BooleanField(help_text="The streak reaches the plan's loyalty months.")
    bonuses_pending = StrictDecimalField(**MONEY, help_text="Cash bonuses held for the payout run.")
    bonuses_paid = StrictDecimalField(**MONEY, help_text="Cash bonuses credited to the passive wallet.")
    bonuses_reversed = StrictDecimalField(**MONEY, help_text="Cash bonuses taken back by a refund.")
    clawback_debt = StrictDecimalField(**MONEY, help_text="Owed from refunds: later passive credits "
                                                                 "pay it first.")


class BonusFilterIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Bonus.Kind.choices, required=False)
    month = MonthField(required=False)
    status = serializers.ChoiceField(choices=Bonus.Status.choices, required=False)


class BonusOut(serializers.ModelSerializer):
    class Meta:
        model = Bonus
        fields = ["id", "kind", "amount", "status", "rate", "level", "compression_applied", "purchase", "pool_run",
                  "payout_run", "paid_at", "created_at"]


class TeamIn(serializers.Serializer):
    depth = StrictIntegerField(min_value=1, max_value=10, required=False, default=1)


class ReferralOut(serializers.Serializer):
    id = StrictIntegerField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    rank = serializers.CharField()
    is_active = serializers.BooleanField()
    pv = StrictDecimalField(**MONEY)
    fv = StrictDecimalField(**MONEY)
    branch_volume = StrictDecimalField(**MONEY)


class DownlineOut(serializers.Serializer):
    id = StrictIntegerField()
    email = serializers.EmailField()
    sponsor_id = StrictIntegerField()
    level = StrictIntegerField()
    rank = serializers.CharField()
    pv = StrictDecimalField(**MONEY)
    branch_volume = StrictDecimalField(**MONEY)


class TeamOut(serializers.Serializer):
    referrals = ReferralOut(many=True)
    downline = DownlineOut(many=True)
    depth = StrictIntegerField()
    truncated = serializers.BooleanField()


class NotificationFilterIn(serializers.Serializer):
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)


class NotificationOut(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "amount", "message", "bonus", "is_read", "created_at"]


class PayoutMonthIn(serializers.Serializer):
    month = MonthField(help_text="YYYY-MM")


class PayoutKindOut(serializers.Serializer):
    amount = StrictDecimalField(**MONEY)
    count = StrictIntegerField()


class PayoutMemberOut(serializers.Serializer):
    user_id = StrictIntegerField()
    email = serializers.EmailField()
    amount = StrictDecimalField(**MONEY)
    count = StrictIntegerField()


class PayoutRunSummaryOut(serializers.Serializer):
    id = StrictIntegerField()
    bonuses = StrictIntegerField()
    total = StrictDecimalField(**MONEY)
    created_at = serializers.DateTimeField()


class PayoutPreviewOut(serializers.Serializer):
    month = MonthField()
    total = StrictDecimalField(**MONEY)
    count = StrictIntegerField(help_text="Held bonuses the run would pay.")
    members = StrictIntegerField()
    by_kind = serializers.DictField(child=PayoutKindOut())
    by_member = PayoutMemberOut(many=True)
    already_run = serializers.BooleanField()
    run = PayoutRunSummaryOut(allow_null=True)
    runnable = serializers.BooleanField()
    refusal = serializers.CharField(allow_null=True)
    warning = serializers.CharField(allow_null=True, help_text="Paying the current month early: what that means.")


class PayoutRunOut(serializers.ModelSerializer):
    month = MonthField()

    class Meta:
        model = PayoutRun
        fields = ["id", "month", "bonuses", "total", "created_by", "created_at"]


# --- preview (§11) ---------------------------------------------------------------------------

RATE = {"max_digits": 7, "decimal_places": 6}


class MemberPreviewIn(serializers.Serializer):
    option = StrictIntegerField(min_value=1, help_text="The option's id (see /api/projects/).")
    packs = StrictIntegerField(min_value=1, max_value=MAX_PACKS, default=1)


class StaffPreviewIn(MemberPreviewIn):
    member_id = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.filter(is_system_root=False), required=False, help_text="The buyer (or `email`).")
    email = serializers.SlugRelatedField(slug_field="email", queryset=User.objects.filter(is_system_root=False),
                                         required=False, help_text="The buyer (or `member_id`).")
    option = serializers.PrimaryKeyRelatedField(queryset=Option.objects.all(),
                                                help_text="Any option, for sale or not.")
    price = StrictDecimalField(**MONEY, min_value=Decimal("0.00000001"), required=False, allow_null=True,
                                     help_text="Price instead of packs × the pack price.")
    when = serializers.DateTimeField(required=False, allow_null=True, help_text="The purchase's date (default now).")

    def validate(self, attrs):
        if ("member_id" in attrs) == ("email" in attrs):
            raise serializers.ValidationError({"member_id": serializers.ErrorDetail(
                "Name the buyer with member_id or email (one of them).", code="member_required")})
        attrs["user"] = attrs.pop("member_id", None) or attrs.pop("email")
        return attrs


class PreviewBonusOut(serializers.Serializer):
    user_id = StrictIntegerField()
    email = serializers.EmailField()
    kind = serializers.CharField(help_text="The bonus kind (as in the bonus list).")
    level = StrictIntegerField(allow_null=True)
    rate = StrictDecimalField(**RATE, allow_null=True)
    amount = StrictDecimalField(**MONEY)
    options = StrictIntegerField(allow_null=True, help_text="Options granted (options bonuses).")
    option_id = StrictIntegerField(allow_null=True, help_text="The option granted (options bonuses).")


class StaffPreviewOut(serializers.Serializer):
    member_id = StrictIntegerField()
    email = serializers.EmailField()
    option = StrictIntegerField()
    packs = StrictIntegerField()
    price = StrictDecimalField(**MONEY)
    when = serializers.DateTimeField()
    bonuses = PreviewBonusOut(many=True)
    total = StrictDecimalField(**MONEY)


class OwnBonusOut(serializers.Serializer):
    kind = serializers.CharField(help_text="`investment` or `grace_day`.")
    rate = StrictDecimalField(**RATE)
    amount = StrictDecimalField(**MONEY)
    options = StrictIntegerField(help_text="Options granted.")
    option_id = StrictIntegerField(help_text="The option granted.")


class MemberPreviewOut(serializers.Serializer):
    option = StrictIntegerField()
    packs = StrictIntegerField()
    price = StrictDecimalField(**MONEY)
    when = serializers.DateTimeField()
    own = OwnBonusOut(many=True, help_text="My investment and Grace Day bonuses (in options).")
    own_total = StrictDecimalField(**MONEY)
    referral = StrictDecimalField(**MONEY, help_text="What my sponsor would get (in options), an amount.")
    upline_total = StrictDecimalField(**MONEY, help_text="What my upline would earn in all: differentials, "
                                                                "pioneer bonuses and the company's share.")
