"""Members, the sponsor tree, wallets (cached balances) and their ledger."""

from __future__ import annotations

import secrets
import string
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from common.display import signed_money
from common.money import MoneyField

# The sponsor tree is stored as a materialized path: each member's path is its
# sponsor's path followed by its own id, base-36, fixed width. The upline is
# read straight from the path (no query), the downline is a prefix match.
PATH_STEP = 7  # 36**7 ≈ 7.8e10 ids
# How deep a line may go. The path's B-tree index (varchar_pattern_ops) takes entries of at most
# 2704 bytes (PostgreSQL's btree version 4 limit, a third of a page, header included): a path that
# does not compress is refused beyond 2692 characters, whatever the column's max_length (4000).
# Whole levels: 384 (2688 characters), the root's included; `accounts.services` refuses deeper
# (`line_too_deep`) before the database would.
PATH_INDEX_MAX_CHARS = 2692
LINE_MAX_LEVELS = PATH_INDEX_MAX_CHARS // PATH_STEP  # 384: the root and 383 levels below it
_ALPHABET = string.digits + string.ascii_lowercase


def path_encode(pk: int) -> str:
    if pk < 0 or pk >= 36**PATH_STEP:
        raise ValueError(f"id {pk} does not fit a path step")
    out = []
    for _ in range(PATH_STEP):
        pk, rem = divmod(pk, 36)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def path_decode(path: str) -> list[int]:
    """The ids on a path, from the top (the root) down to the member itself."""
    return [int(path[i:i + PATH_STEP], 36) for i in range(0, len(path), PATH_STEP)]


def new_referral_code() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(8))


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        """Plain model creation (used by `createsuperuser`). Members are created with
        `accounts.services.member_create`, which places them in the tree."""
        from accounts.services import member_create

        return member_create(email=email, password=password, **extra)

    def create_superuser(self, email, password=None, **extra):
        from accounts.services import member_create

        return member_create(email=email, password=password, is_staff=True, is_superuser=True,
                             **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    sponsor = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="referrals")
    is_system_root = models.BooleanField(default=False, editable=False)
    path = models.CharField(max_length=4000, blank=True, editable=False)
    depth = models.PositiveIntegerField(default=0, editable=False)
    referral_code = models.CharField(max_length=16, unique=True, default=new_referral_code)

    # Cached wallet balances: changed only together with their ledger rows
    # (accounts.services.wallet_post), under a row lock.
    balance_active = MoneyField(default=0, editable=False)
    balance_passive = MoneyField(default=0, editable=False)
    # What a refund's clawback could not take from the passive wallet: later passive
    # credits pay it first (money-lifecycle §2). Changed only with its DebtEntry rows.
    clawback_debt = MoneyField(default=0, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "member"
        constraints = [
            models.CheckConstraint(condition=Q(balance_active__gte=0), name="user_balance_active_gte_0"),
            models.CheckConstraint(condition=Q(balance_passive__gte=0), name="user_balance_passive_gte_0"),
            models.CheckConstraint(condition=Q(clawback_debt__gte=0), name="user_clawback_debt_gte_0"),
            models.UniqueConstraint(fields=["is_system_root"], condition=Q(is_system_root=True),
                                    name="user_single_system_root"),
            models.CheckConstraint(condition=Q(is_system_root=True) | Q(sponsor__isnull=False),
                                   name="user_sponsor_required"),
        ]
        indexes = [
            models.Index(fields=["path"], name="user_path_idx", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["date_joined"], name="user_date_joined_idx"),  # the dashboard's new members
            # A member's direct referrals in id order, a page at a time (the genealogy tree).
            models.Index(fields=["sponsor", "id"], name="user_sponsor_id_idx"),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email

    @property
    def upline_ids(self) -> list[int]:
        """Sponsor first, up to (not including) the system root. No query."""
        ids = path_decode(self.path)[:-1]  # drop self
        return list(reversed(ids[1:]))  # drop the root at the top


class Wallet(models.TextChoices):
    ACTIVE = "active", "Active (to buy with)"
    PASSIVE = "passive", "Passive (earnings)"


class LedgerEntry(models.Model):
    """One balance change. Never edited, never deleted."""

    class Reason(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        PURCHASE = "purchase", "Purchase"
        TRANSFER = "transfer", "Passive → active transfer"
        BONUS = "bonus", "Bonus"
        BONUS_PURCHASE = "bonus_purchase", "Bonus paid in options"
        LEGACY = "legacy", "Legacy purchase (paid outside the platform)"
        ADJUSTMENT = "adjustment", "Operator adjustment"
        TRANSFER_BONUS = "transfer_bonus", "Transfer bonus (passive → active)"
        MEMBER_TRANSFER = "member_transfer", "Transfer between members"
        WITHDRAWAL = "withdrawal", "Withdrawal (reserved)"
        WITHDRAWAL_RETURN = "withdrawal_return", "Withdrawal returned (rejected or cancelled)"
        REFUND = "refund", "Purchase refund"
        BONUS_REVERSAL = "bonus_reversal", "Bonus taken back by a refund"
        CLAWBACK = "clawback", "Clawback debt repaid"

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="ledger_entries")
    wallet = models.CharField(max_length=8, choices=Wallet.choices)
    amount = MoneyField(help_text="Signed: credits are positive, debits negative.")
    balance_after = MoneyField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    description = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    cause_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT)
    cause_id = models.CharField(max_length=64, blank=True)
    cause = GenericForeignKey("cause_type", "cause_id")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["-created_at", "-id"]
        # The member page's money actions (accounts.admin), each its own grant: the stock
        # add_ledgerentry is easy to give without seeing that it moves money.
        permissions = [("deposit", "Can deposit into a member's wallet"),
                       ("transfer_between_members", "Can transfer between members' wallets")]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_amount_nonzero"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="ledger_balance_after_gte_0"),
        ]
        indexes = [models.Index(fields=["user", "wallet", "-created_at"], name="ledger_user_wallet_idx"),
                   models.Index(fields=["cause_type", "cause_id"], name="ledger_cause_idx")]

    def __str__(self) -> str:
        return f"{self.user} {self.wallet} {signed_money(self.amount, 'USD')} ({self.get_reason_display()})"


class DebtEntry(models.Model):
    """One change of a member's clawback debt (`User.clawback_debt`): positive when a
    refund's clawback found the passive wallet short, negative when a later passive
    credit repaid it. Never edited, never deleted; `check_ledger` sums them."""

    class Reason(models.TextChoices):
        CLAWBACK = "clawback", "Clawback the passive wallet could not cover"
        REPAYMENT = "repayment", "Repaid from a passive credit"

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="debt_entries")
    amount = MoneyField(help_text="Signed: debt added is positive, debt repaid negative.")
    debt_after = MoneyField()
    reason = models.CharField(max_length=10, choices=Reason.choices)
    description = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    cause_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT)
    cause_id = models.CharField(max_length=64, blank=True)
    cause = GenericForeignKey("cause_type", "cause_id")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "debt entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="debt_amount_nonzero"),
            models.CheckConstraint(condition=Q(debt_after__gte=0), name="debt_after_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.user} debt {signed_money(self.amount, 'USD')} ({self.get_reason_display()})"


class WalletSettings(models.Model):
    """Money-lifecycle numbers (money-lifecycle.md §3–4): one row (pk=1), edited in the admin."""

    SINGLETON_PK = 1

    transfer_bonus_rate = models.DecimalField(
        max_digits=7, decimal_places=6, default=Decimal("0.02"),
        help_text="Bonus on a passive → active transfer, a fraction (0.02 = 2%); 0 turns it off.")
    withdrawal_min = MoneyField(default=Decimal("10"), help_text="Smallest withdrawal (USD).")
    withdrawal_fee = MoneyField(default=Decimal("1"), help_text="Flat fee per withdrawal (USD).")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        verbose_name = "wallet settings"
        verbose_name_plural = "wallet settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="wallet_settings_singleton"),
            models.CheckConstraint(condition=Q(transfer_bonus_rate__gte=0) & Q(transfer_bonus_rate__lte=1),
                                   name="wallet_settings_bonus_rate_fraction"),
            models.CheckConstraint(condition=Q(withdrawal_min__gte=0) & Q(withdrawal_fee__gte=0),
                                   name="wallet_settings_withdrawal_gte_0"),
        ]

    def __str__(self) -> str:
        return "Wallet settings"

    @classmethod
    def load(cls) -> WalletSettings:
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj
