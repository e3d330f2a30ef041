"""Projects, their options (packs of shares) and purchases."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.display import money
from common.money import MoneyField


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Option(models.Model):
    """A pack of `pack_shares` shares (project options) sold for `pack_price` USD."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="options")
    name = models.CharField(max_length=100)
    pack_shares = models.PositiveBigIntegerField()
    pack_price = MoneyField()
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["project__name", "pack_price"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="option_unique_name_per_project"),
            models.CheckConstraint(condition=Q(pack_shares__gt=0), name="option_pack_shares_gt_0"),
            models.CheckConstraint(condition=Q(pack_price__gt=0), name="option_pack_price_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.project.name} — {self.name}"

    @property
    def unit_price(self) -> Decimal:
        return self.pack_price / Decimal(self.pack_shares)


class Purchase(models.Model):
    class Kind(models.TextChoices):
        REGULAR = "regular", "Regular"
        BONUS = "bonus", "Bonus auto-purchase"
        LEGACY = "legacy", "Legacy (imported)"

    COUNTED_KINDS = (Kind.REGULAR, Kind.LEGACY)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="purchases")
    option = models.ForeignKey(Option, on_delete=models.PROTECT, related_name="purchases")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.REGULAR)
    packs = models.PositiveIntegerField(null=True, blank=True,
                                        help_text="Packs bought (regular purchases).")
    shares = models.PositiveBigIntegerField()
    price = MoneyField()
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULL: no key
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set (with its Refund row) when the purchase is refunded: it no longer counts.
    refunded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "idempotency_key"], name="purchase_unique_idempotency_key",
                                    condition=Q(idempotency_key__isnull=False)),
            models.CheckConstraint(condition=Q(shares__gt=0), name="purchase_shares_gt_0"),
            models.CheckConstraint(condition=Q(price__gt=0), name="purchase_price_gt_0"),
        ]
        indexes = [models.Index(fields=["user", "project"], name="purchase_user_project_idx"),
                   models.Index(fields=["kind", "created_at"], name="purchase_kind_created_idx")]

    def __str__(self) -> str:
        price = money(self.price, "USD")
        return f"#{self.pk} {self.user} {self.shares:,} × {self.project} = {price} ({self.get_kind_display()})"

    @property
    def is_counted(self) -> bool:
        """A regular or legacy purchase that has not been refunded."""
        return self.kind in self.COUNTED_KINDS and self.refunded_at is None

    @property
    def is_refunded(self) -> bool:
        return self.refunded_at is not None


class Refund(models.Model):
    """A full refund of a counted purchase (money-lifecycle §2): one per purchase."""

    purchase = models.OneToOneField(Purchase, on_delete=models.PROTECT, related_name="refund")
    amount = MoneyField(help_text="The purchase price (credited back for a regular purchase).")
    reason = models.CharField(max_length=255, blank=True)
    refunded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0")]

    def __str__(self) -> str:
        return f"Refund of purchase #{self.purchase_id}"
