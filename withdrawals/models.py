"""Withdrawals: money leaving the platform from a member's passive wallet (money-lifecycle §3).

The amount is reserved at once (a passive `withdrawal` debit written with the request); a
rejection or a cancellation credits it back (`withdrawal_return`). Every state change is
also a `WithdrawalEvent` row: the request's history and the member's notification.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.utils import timezone
from simple_history.models import HistoricalRecords

from common.display import money
from common.money import MoneyField

# The client's key; accounts.services.IDEMPOTENCY_KEY_MAX_LENGTH bounds every idempotency key.
IDEMPOTENCY_KEY_MAX_LENGTH = 100


HALF_QUANTUM = Value(Decimal("0.000000005"), output_field=models.DecimalField(max_digits=10, decimal_places=9))


class Withdrawal(models.Model):
    class Method(models.TextChoices):
        USDT_TRC20 = "USDT-TRC20", "USDT on TRON (TRC20)"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        PAID = "paid", "Paid"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    # The reserve is held in these states, paid out in PAID, credited back in the others.
    HELD = (Status.REQUESTED, Status.APPROVED)
    RETURNED = (Status.REJECTED, Status.CANCELLED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="withdrawals")
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.USDT_TRC20)
    destination = models.CharField(max_length=128)
    amount = MoneyField(help_text="Taken from the passive wallet (reserved with the request).")
    fee = MoneyField(help_text="Flat fee at the time of the request.")
    net_amount = MoneyField(help_text="What the member receives: amount − fee.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    idempotency_key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH, null=True, blank=True)  # noqa: DJ001 - NULL: no key
    tx_ref = models.CharField("transaction reference", max_length=128, blank=True)
    reason = models.CharField("rejection reason", max_length=255, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    paid_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    rejected_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_gt_0"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="withdrawal_fee_gte_0"),
            # net = amount − fee, to half a unit of the 8th decimal: exact on PostgreSQL's numeric,
            # and true on SQLite too, whose arithmetic is binary floating point.
            models.CheckConstraint(condition=Q(net_amount__gte=F("amount") - F("fee") - HALF_QUANTUM)
                                   & Q(net_amount__lte=F("amount") - F("fee") + HALF_QUANTUM),
                                   name="withdrawal_net_is_amount_less_fee"),
            models.CheckConstraint(condition=Q(net_amount__gt=0), name="withdrawal_net_gt_0"),
            models.CheckConstraint(condition=Q(status__in=["requested", "approved", "paid", "rejected", "cancelled"]),
                                   name="withdrawal_status_valid"),
            models.CheckConstraint(condition=~Q(status="paid") | (~Q(tx_ref="") & Q(paid_at__isnull=False)),
                                   name="withdrawal_paid_has_tx_ref"),
            models.CheckConstraint(condition=~Q(status="rejected") | (~Q(reason="") & Q(rejected_at__isnull=False)),
                                   name="withdrawal_rejected_has_reason"),
            models.UniqueConstraint(fields=["user", "idempotency_key"], name="withdrawal_unique_idempotency_key",
                                    condition=Q(idempotency_key__isnull=False)),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="withdrawal_status_idx"),
                   models.Index(fields=["user", "-created_at"], name="withdrawal_user_idx")]
        # The two steps that send money out, each its own permission: a firm can give them to
        # two groups, so that no one operator both checks and pays a request.
        permissions = [("approve_withdrawal", "Can approve withdrawals"),
                       ("pay_withdrawal", "Can mark withdrawals paid")]

    def __str__(self) -> str:
        return f"Withdrawal #{self.pk} {money(self.amount, 'USD')} ({self.get_status_display()})"

    @property
    def reserve_key(self) -> str:
        """The idempotency key of the passive debit that reserves the amount."""
        return f"withdrawal:{self.pk}"

    @property
    def return_key(self) -> str:
        """The idempotency key of the credit that gives the reserve back."""
        return f"withdrawal_return:{self.pk}"


class WithdrawalEvent(models.Model):
    """One change of a withdrawal: its history, and the member's notification (listed over the
    API with the request, e-mailed once by a task after the commit)."""

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="events")
    status = models.CharField(max_length=10, choices=Withdrawal.Status.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    message = models.CharField(max_length=255)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["withdrawal", "status"], name="withdrawal_event_once")]

    def __str__(self) -> str:
        return f"#{self.withdrawal_id} {self.status}"
