"""The compensation plan's data: ranks, tiers, plan settings, per-member volumes,
bonuses, pool runs, rank history, notifications.

Every number of the plan is a row an operator edits in the admin; the code reads
them from here (see `mlm.selectors.plan`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from accounts.models import User
from common.display import money
from common.money import MoneyField

# The month helpers live in mlm.rules (pure); re-exported here for the rest of the app.
from mlm.rules import month_next  # noqa: F401
from mlm.rules import month_of as month_start  # noqa: F401
from purchases.models import Purchase

RATE_DIGITS = {"max_digits": 7, "decimal_places": 6}  # a fraction: 0.180000


MONTH_YEARS = (1900, 2999)  # the months a client may name: month arithmetic stays inside date's range


def month_parse(text: str) -> date:
    """`YYYY-MM` (ASCII digits, month 01–12, a year in MONTH_YEARS) → the first day of that month.
    Raises ValueError for anything else. The one parser of a month given as text."""
    text = (text or "").strip()
    if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isascii() \
            or not (text[:4] + text[5:]).isdigit():
        raise ValueError(f"{text!r} is not a month in the form YYYY-MM.")
    year, month = int(text[:4]), int(text[5:])
    if not (1 <= month <= 12) or not MONTH_YEARS[0] <= year <= MONTH_YEARS[1]:
        raise ValueError(f"{text!r} is not a month in the form YYYY-MM.")
    return date(year, month, 1)


class Rank(models.Model):
    code = models.SlugField(max_length=30, unique=True)
    name = models.CharField(max_length=60)
    rate = models.DecimalField(**RATE_DIGITS, help_text="Differential rate, a fraction (0.08 = 8%).")
    pv_required = MoneyField(default=0, help_text="Lifetime personal volume required.")
    tv_required = MoneyField(default=0, help_text="Qualifying team volume required.")
    partners_required = models.PositiveIntegerField(default=0,
                                                    help_text="Direct referrals active this month.")
    position = models.PositiveIntegerField(unique=True, help_text="Order of the ranks, lowest first.")

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lte=1), name="rank_rate_fraction"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.rate * 100:.2f}%)"


class InvestmentTier(models.Model):
    threshold = MoneyField(unique=True, help_text="T (sum of the member's purchases in a project) at least.")
    rate = models.DecimalField(**RATE_DIGITS, help_text="A fraction (0.05 = 5%).")

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lte=1), name="tier_rate_fraction"),
            models.CheckConstraint(condition=Q(threshold__gt=0), name="tier_threshold_gt_0"),
        ]

    def __str__(self) -> str:
        return f"≥ {self.threshold:,.2f}: {self.rate * 100:.2f}%"


class PlanSettings(models.Model):
    """The plan's other numbers: one row (pk=1), edited in the admin."""

    SINGLETON_PK = 1

    active_min_pv = MoneyField(default=Decimal("200"), help_text="Monthly PV that makes a member active.")
    pioneer_threshold = MoneyField(default=Decimal("5000"),
                                   help_text="One purchase at least this large makes the buyer a pioneer.")
    pioneer_limit = models.PositiveIntegerField(default=50, help_text="At most this many pioneers.")
    pioneer_rate = models.DecimalField(**RATE_DIGITS, default=Decimal("0.04"))
    referral_rate = models.DecimalField(**RATE_DIGITS, default=Decimal("0.01"))
    referral_threshold = MoneyField(default=Decimal("5000"))
    branch_cap = models.DecimalField(**RATE_DIGITS, default=Decimal("0.50"),
                                     help_text="Most of the next rank's TV requirement one branch may give.")
    max_levels = models.PositiveIntegerField(default=50, help_text="Differential walk: at most this many levels.")
    pool_rate = models.DecimalField(**RATE_DIGITS, default=Decimal("0.02"),
                                    help_text="Global pool: share of the month's company volume.")

    class PayoutMode(models.TextChoices):
        IMMEDIATE = "immediate", "Immediate (credited when earned)"
        MONTHLY = "monthly", "Monthly (held until the payout run)"

    payout_mode = models.CharField(max_length=10, choices=PayoutMode.choices, default=PayoutMode.IMMEDIATE,
                                   help_text="When cash bonuses reach the passive wallet.")
    grace_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Grace Day: the day of the month (UTC) whose purchases earn the Grace Day bonus.")
    grace_day_rate = models.DecimalField(**RATE_DIGITS, default=Decimal("0.05"),
                                         help_text="Grace Day bonus, a fraction of the price paid in options; 0 = off.")
    loyalty_months = models.PositiveSmallIntegerField(
        default=3, help_text="Consecutive Grace Day months that make a member loyalty-qualified.")
    payout_day = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Monthly mode: day of the next month on which a month's held bonuses are paid (1–28).")
    plan_version = models.PositiveIntegerField(
        default=0, db_default=0, editable=False,
        help_text="Bumped whenever a rank or tier changes: processes reuse their cached plan until then.")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        verbose_name = "plan settings"
        verbose_name_plural = "plan settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="plan_settings_singleton"),
                       models.CheckConstraint(condition=Q(payout_day__gte=1) & Q(payout_day__lte=28),
                                              name="plan_settings_payout_day_1_28"),
                       models.CheckConstraint(condition=Q(grace_day__gte=1) & Q(grace_day__lte=28),
                                              name="plan_settings_grace_day_1_28")]

    def __str__(self) -> str:
        return "Plan settings"

    @classmethod
    def load(cls) -> PlanSettings:
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj


class MemberStats(models.Model):
    """One row per member (not the root): rank, pioneer status and volumes."""

    user = models.OneToOneField(User, primary_key=True, on_delete=models.CASCADE, related_name="mlm_stats")
    rank = models.ForeignKey(Rank, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="Empty means the lowest rank.")
    is_pioneer = models.BooleanField(default=False)
    loyalty_streak = models.PositiveSmallIntegerField(default=0, db_default=0,
                                                      help_text="Consecutive Grace Day months (§8a).")
    pioneer_since = models.DateTimeField(null=True, blank=True)
    pioneer_purchase = models.ForeignKey("purchases.Purchase", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+", help_text="The purchase that made this member a pioneer.")
    pv = MoneyField(default=0)
    fv = MoneyField(default=0)
    tv = MoneyField(default=0)
    max_branch = MoneyField(default=0)
    cap = MoneyField(default=0)
    next_rank = models.ForeignKey(Rank, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    gap = MoneyField(default=0, help_text="TV still missing for the next rank.")
    tv_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "member stats"
        verbose_name_plural = "member stats"
        indexes = [models.Index(fields=["rank"], name="mlm_stats_rank_idx"),
                   models.Index(fields=["is_pioneer"], name="mlm_stats_pioneer_idx",
                                condition=Q(is_pioneer=True))]

    def __str__(self) -> str:
        return f"stats of {self.user_id}"


class MonthlyVolume(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="First day of the month (UTC).")
    pv = MoneyField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "month"], name="mlm_monthly_unique"),
                       models.CheckConstraint(condition=Q(month__day=1), name="mlm_monthly_first_day")]
        indexes = [models.Index(fields=["month", "pv"], name="mlm_monthly_month_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.month:%Y-%m}: {money(self.pv)}"


class RankHistory(models.Model):
    class Reason(models.TextChoices):
        QUALIFIED = "qualified", "Qualified"
        MANUAL = "manual", "Set by an operator"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="rank_history")
    old_rank = models.ForeignKey(Rank, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    new_rank = models.ForeignKey(Rank, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=10, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "rank history"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.old_rank_id} → {self.new_rank_id} ({self.reason})"


class PoolRun(models.Model):
    month = models.DateField(unique=True, help_text="First day of the month paid for.")
    company_volume = MoneyField()
    pool = MoneyField()
    qualifiers = models.PositiveIntegerField(default=0)
    share = MoneyField(default=0)
    remainder = MoneyField(default=0, help_text="What rounding left, paid to the root.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-month"]
        constraints = [models.CheckConstraint(condition=Q(month__day=1), name="mlm_poolrun_first_day")]

    def __str__(self) -> str:
        return f"Pool {self.month:%Y-%m}: {money(self.pool, 'USD')}"


class PayoutRun(models.Model):
    """The monthly payout of held bonuses (money-lifecycle §1): one row per month, inserted
    first in the run's transaction, so a second run for the month pays nothing."""

    month = models.DateField(unique=True, help_text="First day of the month paid for.")
    bonuses = models.PositiveIntegerField(default=0, help_text="Bonuses paid by this run.")
    total = MoneyField(default=0)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-month"]
        constraints = [models.CheckConstraint(condition=Q(month__day=1), name="mlm_payoutrun_first_day")]

    def __str__(self) -> str:
        return f"Payout {self.month:%Y-%m}: {money(self.total, 'USD')}"


class Bonus(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", "Paid"
        PENDING = "pending", "Pending (held)"
        CANCELLED = "cancelled", "Cancelled (held, then refunded)"
        REVERSED = "reversed", "Reversed (paid, then taken back)"

    class Kind(models.TextChoices):
        DIFFERENTIAL = "differential", "Differential"
        PIONEER = "pioneer", "Pioneer"
        SYSTEM_COMPRESSION = "system_compression", "System compression (root)"
        INVESTMENT = "investment", "Investment (options)"
        REFERRAL = "referral", "Referral (options)"
        GLOBAL_POOL = "global_pool", "Global pool"
        GRACE_DAY = "grace_day", "Grace Day (options)"

    PASSIVE_KINDS = (Kind.DIFFERENTIAL, Kind.PIONEER, Kind.SYSTEM_COMPRESSION, Kind.GLOBAL_POOL)
    # Statuses of a bonus a refund took back (it no longer counts anywhere).
    TAKEN_BACK_STATUSES = (Status.CANCELLED, Status.REVERSED)

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="bonuses",
                             help_text="The recipient.")
    purchase = models.ForeignKey("purchases.Purchase", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="mlm_bonuses", help_text="The purchase that caused it.")
    pool_run = models.ForeignKey(PoolRun, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="bonuses")
    granted_purchase = models.ForeignKey("purchases.Purchase", null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="+",
                                         help_text="The bonus auto-purchase (options bonuses).")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    level = models.PositiveIntegerField(null=True, blank=True, help_text="Distance from the buyer.")
    rate = models.DecimalField(**RATE_DIGITS, null=True, blank=True)
    amount = MoneyField()
    compression_applied = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PAID)
    payout_run = models.ForeignKey(PayoutRun, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="paid_bonuses", help_text="The run that paid a held bonus.")
    paid_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True, help_text="Cancelled or reversed by a refund.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "bonuses"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["purchase", "user", "kind"], name="mlm_bonus_once_per_purchase",
                                    condition=Q(purchase__isnull=False)),
            models.UniqueConstraint(fields=["pool_run", "user"], name="mlm_bonus_once_per_pool",
                                    condition=Q(pool_run__isnull=False)),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mlm_bonus_amount_gt_0"),
            models.CheckConstraint(condition=Q(purchase__isnull=False) | Q(pool_run__isnull=False),
                                   name="mlm_bonus_has_cause"),
        ]
        indexes = [models.Index(fields=["user", "kind", "-created_at"], name="mlm_bonus_user_kind_idx"),
                   models.Index(fields=["created_at"], name="mlm_bonus_pending_idx",
                                condition=Q(status="pending"))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {money(self.amount, 'USD')} → {self.user_id}"

    @property
    def ledger_key(self) -> str:
        """The idempotency key of a cash bonus's passive credit: the same whether it is credited
        when created or by a payout run, so a bonus can never be credited twice."""
        return f"mlm:bonus:{self.pk}"


class ProcessedPurchase(models.Model):
    """Inserted in the same transaction as a purchase's bonuses: exactly once."""

    purchase = models.OneToOneField("purchases.Purchase", primary_key=True, on_delete=models.PROTECT,
                                    related_name="mlm_processed")
    processed_at = models.DateTimeField(default=timezone.now)
    # The path along which this purchase raised FV, kept only once the tree changed under it
    # (a sponsor change records the old path; empty = the buyer's path now), so a refund takes
    # FV back from the same members. Sparse: a full path per purchase would be ~1 KB at depth 150.
    fv_path = models.CharField(max_length=4000, blank=True)

    def __str__(self) -> str:
        return f"purchase {self.purchase_id} processed"


class ProcessedRefund(models.Model):
    """Inserted first in the clawback's transaction (mlm.refunds.purchase_clawback): a
    refund's volumes, bonuses and pioneer status are taken back exactly once."""

    refund = models.OneToOneField("purchases.Refund", primary_key=True, on_delete=models.PROTECT,
                                  related_name="mlm_processed")
    processed_at = models.DateTimeField(default=timezone.now)
    was_processed = models.BooleanField(
        default=True, help_text="False: the purchase was refunded before mlm processed it (nothing to take back).")

    class Meta:
        verbose_name = "refund clawback"
        verbose_name_plural = "refund clawbacks"

    def __str__(self) -> str:
        return f"refund {self.refund_id} taken back"


class TeamVolumeQueue(models.Model):
    """Members waiting for a TV recalculation; one row per member (never queued twice)."""

    user = models.OneToOneField(User, primary_key=True, on_delete=models.CASCADE, related_name="+")
    queued_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"TV recalculation of {self.user_id}"


class Notification(models.Model):
    # A notification is about a bonus (of any bonus kind), a rank change or a payout run.
    RANK_CHANGE = "rank_change"
    PAYOUT = "payout"  # one per member per payout run: the held bonuses it credited
    KIND_CHOICES = [*Bonus.Kind.choices, (RANK_CHANGE, "Rank change"), (PAYOUT, "Payout of held bonuses")]

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="mlm_notifications")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = MoneyField(null=True, blank=True)
    message = models.CharField(max_length=255)
    bonus = models.ForeignKey(Bonus, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rank_history = models.ForeignKey(RankHistory, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    is_read = models.BooleanField(default=False)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "is_read", "-created_at"], name="mlm_notif_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.message}"


class MemberNetwork(User):
    """The admin's "member network" page (a proxy of the member)."""

    class Meta:
        proxy = True
        verbose_name = "member network"
        verbose_name_plural = "member network"


class PurchaseProcessing(Purchase):
    """The admin's view of purchases with their processing state (a proxy)."""

    class Meta:
        proxy = True
        verbose_name = "purchase processing"
        verbose_name_plural = "purchase processing"
        # The admin's "Process the selected purchases" creates and pays bonuses: its own
        # permission, not the view permission of this (read-only) list.
        permissions = [("reprocess_purchase", "Can process selected purchases by hand")]


class PurchasePreview(Purchase):
    """The admin's "Preview a purchase" page (a proxy: it has no rows and writes none)."""

    class Meta:
        proxy = True
        verbose_name = "purchase preview"
        verbose_name_plural = "preview a purchase"
