"""Refunds in the mlm app: the clawback (money-lifecycle §2).

`purchases.services.purchase_refund` commits the refund and sends `purchase_refunded` after
the commit; the receiver (`mlm.receivers`) enqueues `mlm.purchase_clawback`, which runs
`purchase_clawback` in its own transaction. It is exactly once: a `ProcessedRefund` row is
inserted first, so a retried task, a duplicated message or the sweeper (`refunds_sweep`, for a
message that was lost) takes nothing back twice. Refunds take back stored amounts; nothing is
recomputed.

In that one transaction:

1. A purchase mlm never processed: its `ProcessedPurchase` marker is inserted now (neither the
   sweeper nor a late message will pay it), and that is all. A purchase being processed at this
   moment is waited for (the marker's unique key), then taken back.
2. Bonuses with `purchase` = this one (row-locked, pk order): `pending` → `cancelled` (no money);
   a `paid` cash bonus → `reversed` with a passive debit of its amount (`bonus_reversal`) — what
   the passive balance cannot cover becomes clawback debt (`accounts.services.wallet_post`,
   `allow_debt`); a `paid` options bonus → `reversed`, and its auto-purchase revoked
   (`purchases.services.purchase_grant_revoke`: marked refunded, credit and debit reversed).
3. Volumes: the buyer's PV and the monthly PV of the purchase's month; the FV of the members the
   purchase raised (`ProcessedPurchase.fv_path` when a sponsor change recorded it, else the
   buyer's path now: the same members even if the tree changed since); their upline (now) is
   queued for a TV recalculation. Ranks stay.
4. Pioneer status this purchase granted is withdrawn, unless another counted purchase of the
   member qualifies on its own (then that one becomes `pioneer_purchase`).
5. A notification to each member whose bonus was taken back.

A global pool already run is not recalculated.

Locks, in this order: the bonus rows, every recipient's member row (pk order), the
auto-purchases, then the stats rows of the buyer and the path (pk order) — member rows before
stats rows, the order processing takes them in (`mlm.engine`), so the two cannot deadlock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet, path_decode
from accounts.services import Posting, wallet_post
from common.locks import lock_rows
from mlm.engine import notifications_save, team_volume_enqueue
from mlm.models import (
    Bonus,
    MemberStats,
    MonthlyVolume,
    Notification,
    PlanSettings,
    ProcessedPurchase,
    ProcessedRefund,
    month_start,
)
from mlm.selectors import fv_upline_ids
from purchases.models import Purchase, Refund
from purchases.services import purchase_grant_revoke

logger = logging.getLogger(__name__)


@dataclass
class ClawbackResult:
    purchase_id: int
    done: bool  # False: already taken back, or nothing to take back (not refunded, not counted)
    was_processed: bool = False  # False: the purchase was refunded before mlm processed it
    bonuses: list[Bonus] = field(default_factory=list)  # the bonuses cancelled or reversed now


def purchase_clawback(*, purchase_id: int) -> ClawbackResult:
    """Take back what a refunded purchase gave (volumes, bonuses, pioneer status), once."""
    with transaction.atomic():
        purchase = Purchase.objects.select_related("user").filter(pk=purchase_id).first()
        if purchase is None:
            raise ValidationError({"purchase_id": ValidationError(f"Unknown purchase {purchase_id}.",
                                                                  code="unknown_purchase")})
        refund = Refund.objects.filter(purchase_id=purchase_id).first()
        if refund is None or purchase.kind not in Purchase.COUNTED_KINDS:
            return ClawbackResult(purchase_id, False)
        try:
            with transaction.atomic():
                marker = ProcessedRefund.objects.create(refund=refund)
        except IntegrityError:
            return ClawbackResult(purchase_id, False)  # already taken back (or being: waited for)
        try:
            with transaction.atomic():
                ProcessedPurchase.objects.create(purchase_id=purchase_id)
        except IntegrityError:
            pass  # processed (a processing under way was waited for): take it back
        else:
            marker.was_processed = False
            marker.save(update_fields=["was_processed"])
            return ClawbackResult(purchase_id, True, was_processed=False)
        processed = ProcessedPurchase.objects.get(pk=purchase_id)
        upline_ids = fv_upline_ids(processed, purchase)
        root_id = path_decode(purchase.user.path)[0]

        # 2. Bonuses first: the recipients' member rows are locked before the stats rows, the
        # order processing takes them in (mlm.engine), so a clawback and a batch in the same
        # line wait for each other rather than deadlock.
        bonuses = _bonuses_take_back(purchase)

        # 3. Volumes.
        buyer_id, price = purchase.user_id, purchase.price
        stats = {s.user_id: s for s in MemberStats.objects.select_for_update()
                 .filter(user_id__in=[buyer_id, *upline_ids]).order_by("user_id")}
        MemberStats.objects.filter(user_id=buyer_id).update(pv=F("pv") - price)
        if upline_ids:
            MemberStats.objects.filter(user_id__in=upline_ids).update(fv=F("fv") - price)
        month = month_start(purchase.created_at)
        MonthlyVolume.objects.filter(user_id=buyer_id, month=month).update(pv=F("pv") - price)
        MonthlyVolume.objects.filter(user_id=buyer_id, month=month, pv=0).delete()
        sponsors_now = set(User.objects.filter(pk__in=[buyer_id, *upline_ids], sponsor__isnull=False)
                           .values_list("sponsor_id", flat=True))
        team_volume_enqueue(sorted((set(upline_ids) | sponsors_now) - {root_id}))

        # 4. Pioneer status.
        me = stats.get(buyer_id)
        if me is not None and me.is_pioneer and me.pioneer_purchase_id == purchase.pk:
            _pioneer_withdraw(me, purchase)

        # 5. Notifications (never break the money).
        _notify_taken_back(bonuses, root_id=root_id, purchase=purchase)
    return ClawbackResult(purchase_id, True, was_processed=True, bonuses=bonuses)


def _bonuses_take_back(purchase: Purchase) -> list[Bonus]:
    bonuses = list(Bonus.objects.select_for_update().filter(purchase_id=purchase.pk).order_by("pk"))
    pending = [b for b in bonuses if b.status == Bonus.Status.PENDING]
    paid = [b for b in bonuses if b.status == Bonus.Status.PAID]
    cash = [b for b in paid if b.kind in Bonus.PASSIVE_KINDS]
    options = [b for b in paid if b.kind not in Bonus.PASSIVE_KINDS]
    if not pending and not paid:
        return []
    lock_rows(User, (b.user_id for b in paid))  # every recipient at once, in pk order
    for b in options:
        if b.granted_purchase_id:
            purchase_grant_revoke(purchase=Purchase(pk=b.granted_purchase_id),
                                  reason=f"{Bonus.Kind(b.kind).label} bonus taken back: refund of purchase "
                                         f"#{purchase.pk}")
    wallet_post([Posting(user_id=b.user_id, wallet=Wallet.PASSIVE, amount=-b.amount,
                         reason=LedgerEntry.Reason.BONUS_REVERSAL, idempotency_key=f"mlm:bonus:{b.pk}:reversal",
                         cause=b, allow_debt=True,
                         description=f"{Bonus.Kind(b.kind).label} bonus taken back: refund of purchase "
                                     f"#{purchase.pk}")
                 for b in cash])
    now = timezone.now()
    if pending:
        Bonus.objects.filter(pk__in=[b.pk for b in pending]).update(status=Bonus.Status.CANCELLED, reversed_at=now)
    if paid:
        Bonus.objects.filter(pk__in=[b.pk for b in paid]).update(status=Bonus.Status.REVERSED, reversed_at=now)
    for b in pending:
        b.status, b.reversed_at = Bonus.Status.CANCELLED, now
    for b in paid:
        b.status, b.reversed_at = Bonus.Status.REVERSED, now
    return pending + paid


def _pioneer_withdraw(stats: MemberStats, purchase: Purchase) -> None:
    """The purchase that made the member a pioneer is refunded: the status goes (the slot is
    free again), unless another counted purchase qualifies on its own."""
    threshold = PlanSettings.load().pioneer_threshold
    other = (Purchase.objects.filter(user_id=stats.user_id, kind__in=Purchase.COUNTED_KINDS,
                                     refunded_at__isnull=True, price__gte=threshold)
             .exclude(pk=purchase.pk).order_by("id").first())
    if other is not None:
        MemberStats.objects.filter(user_id=stats.user_id).update(pioneer_purchase=other)
    else:
        MemberStats.objects.filter(user_id=stats.user_id).update(is_pioneer=False, pioneer_since=None,
                                                                 pioneer_purchase=None)


def _notify_taken_back(bonuses: list[Bonus], *, root_id: int, purchase: Purchase) -> None:
    rows = []
    for b in bonuses:
        if b.user_id == root_id:
            continue
        what = "cancelled" if b.status == Bonus.Status.CANCELLED else "taken back"
        rows.append(Notification(user_id=b.user_id, kind=b.kind, amount=b.amount, bonus=b,
                                 message=f"{Bonus.Kind(b.kind).label} bonus of {b.amount:,.2f} USD on purchase "
                                         f"#{purchase.pk} {what}: the purchase was refunded."[:255]))
    notifications_save(rows)


def refunds_sweep(*, older_than_minutes: int = 5, limit: int = 500) -> int:
    """Take back refunds whose clawback has not run after some minutes (a lost message).
    Returns how many were taken back now."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(Refund.objects.filter(created_at__lt=cutoff, mlm_processed__isnull=True,
                                     purchase__kind__in=Purchase.COUNTED_KINDS)
               .order_by("id").values_list("purchase_id", flat=True)[:limit])
    done = 0
    for pid in ids:
        try:
            done += purchase_clawback(purchase_id=pid).done
        except Exception:  # one bad refund must not stop the sweep; it is logged and retried next time
            logger.exception("mlm: sweeping the clawback of purchase %s failed", pid)
    return done
