import re
from datetime import date

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlm.models import Bonus, Notification

MONEY = {"max_digits": 20, "decimal_places": 8}


@extend_schema_field({"type": "string", "pattern": r"^(19[0-9]{2}|2[0-9]{3})-(0[1-9]|1[0-2])$", "example": "2025-03"})
class MonthField(serializers.CharField):
    """`YYYY-MM` (ASCII digits, month 01–12, year 1900–2999) → the first day of that month."""

    MIN_YEAR, MAX_YEAR = 1900, 2999
    _FORMAT = re.compile(r"([0-9]{4})-([0-9]{2})")
    default_error_messages = {
        "invalid_month": f"Use YYYY-MM: a month from {MIN_YEAR}-01 to {MAX_YEAR}-12, e.g. 2025-03.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "YYYY-MM")
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> date:
        match = self._FORMAT.fullmatch(super().to_internal_value(data))
        if not match or not self.MIN_YEAR <= int(match[1]) <= self.MAX_YEAR or not 1 <= int(match[2]) <= 12:
            self.fail("invalid_month")
        return date(int(match[1]), int(match[2]), 1)


class SummaryOut(serializers.Serializer):
    rank = serializers.CharField()
    rank_name = serializers.CharField()
    rate = serializers.DecimalField(max_digits=7, decimal_places=6)
    is_active = serializers.BooleanField()
    is_pioneer = serializers.BooleanField()
    pv = serializers.DecimalField(**MONEY)
    monthly_pv = serializers.DecimalField(**MONEY)
    fv = serializers.DecimalField(**MONEY)
    tv = serializers.DecimalField(**MONEY)
    max_branch = serializers.DecimalField(**MONEY)
    cap = serializers.DecimalField(**MONEY)
    next_rank = serializers.CharField(allow_null=True)
    gap = serializers.DecimalField(**MONEY)
    gap_pv = serializers.DecimalField(**MONEY)
    partners_required = serializers.IntegerField()


class BonusFilterIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Bonus.Kind.choices, required=False)
    month = MonthField(required=False)


class BonusOut(serializers.ModelSerializer):
    class Meta:
        model = Bonus
        fields = ["id", "kind", "amount", "rate", "level", "compression_applied", "purchase", "pool_run",
                  "created_at"]


class TeamIn(serializers.Serializer):
    depth = serializers.IntegerField(min_value=1, max_value=10, required=False, default=1)


class ReferralOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    rank = serializers.CharField()
    is_active = serializers.BooleanField()
    pv = serializers.DecimalField(**MONEY)
    fv = serializers.DecimalField(**MONEY)
    branch_volume = serializers.DecimalField(**MONEY)


class DownlineOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    sponsor_id = serializers.IntegerField()
    level = serializers.IntegerField()
    rank = serializers.CharField()
    pv = serializers.DecimalField(**MONEY)
    branch_volume = serializers.DecimalField(**MONEY)


class TeamOut(serializers.Serializer):
    referrals = ReferralOut(many=True)
    downline = DownlineOut(many=True)
    depth = serializers.IntegerField()
    truncated = serializers.BooleanField()


class NotificationFilterIn(serializers.Serializer):
    unread = serializers.BooleanField(required=False, allow_null=True, default=None)


class NotificationOut(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "amount", "message", "bonus", "is_read", "created_at"]
