from rest_framework import serializers

from mlm.models import Bonus, Notification

MONEY = {"max_digits": 20, "decimal_places": 8}


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
    month = serializers.RegexField(r"^\d{4}-\d{2}$", required=False, help_text="YYYY-MM")


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
