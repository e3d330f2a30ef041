"""Bonus holds and the monthly payout run (money-lifecycle §1).

Creating bonuses — purchase processing and the global pool — goes through `bonuses_create`,
the one place that decides what a new bonus is:
- in `monthly` payout mode (PlanSettings.payout_mode) a cash bonus (Bonus.PASSIVE_KINDS:
  differential, pioneer, system_compression, global_pool) is `pending`, with no ledger row;
- otherwise a cash bonus is `paid` (paid_at set) and credited at once to the passive wallet;
- an option bonus (investment, referral) is always `paid`: its options were granted.

`payout_run(month=M)` credits the held bonuses of M, exactly once, in one transaction:
1. the `PayoutRun` row for M is inserted first (unique month): a second run for M — a second
   beat, a click, a retried task, even at the same moment — waits for the first to commit, then
   finds the row and pays nothing;
2. the payable bonuses (`selectors.payable_bonuses`: pending, earned before M+1) are locked in
   primary-key order; bonuses created after this point are left for the next run, and a refund
   cancelling one of them waits for the run (or the run skips a bonus it cancelled first);
3. one passive credit per bonus through `wallet_post` (cause = the bonus, idempotency key
   `Bonus.ledger_key`, the key immediate mode uses: a bonus is never credited twice), in
   batches sorted by member (row locks stay in primary-key order);
4. the bonuses become `paid` (paid_at, payout_run) in bulk UPDATEs, the run row gets its count
   and total, and each member paid gets one notification (and an e-mail after the commit).
The number of queries depends on the number of batches, not of bonuses.

`payout_run_due()` is what the daily beat runs: from `payout_day` on, the previous month is
paid once (a missed beat day is caught up the next day).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import Posting, wallet_post
from common.money import ZERO
from mlm import selectors
from mlm.models import Bonus, Notification, PayoutRun, PlanSettings, month_start

logger = logging.getLogger(__name__)

PAYOUT_BATCH = 5000  # bonuses per wallet_post call and per UPDATE


# --- creating bonuses: held or credited ------------------------------------------------------

def bonus_is_held(kind: str, *, settings: PlanSettings) -> bool:
    """A new bonus of `kind` waits for the payout run (True) or is paid at once."""
    return settings.payout_mode == PlanSettings.PayoutMode.MONTHLY and kind in Bonus.PASSIVE_KINDS


def bonus_description(bonus: Bonus) -> str:
    """The ledger text of a cash bonus's credit."""
    if bonus.purchase_id:
        return (f"{Bonus.Kind(bonus.kind).label} bonus, purchase #{bonus.purchase_id}"
                + (f", level {bonus.level}" if bonus.level else ""))
    return f"Global pool {bonus.pool_run.month:%Y-%m}"


def bonus_posting(bonus: Bonus, *, note: str = "") -> Posting:
    """The passive credit of a cash bonus (one per bonus, traceable to it)."""
    return Posting(user_id=bonus.user_id, wallet=Wallet.PASSIVE, amount=bonus.amount,
                   reason=LedgerEntry.Reason.BONUS, idempotency_key=bonus.ledger_key, cause=bonus,
                   description=bonus_description(bonus) + note)


def bonuses_create(bonuses: list[Bonus], *, settings: PlanSettings) -> list[Bonus]:
    """Insert new bonuses (one INSERT) with their status, and credit the cash ones that are not
    held (one `wallet_post`). Runs inside the caller's transaction."""
    now = timezone.now()
    for b in bonuses:
        if bonus_is_held(b.kind, settings=settings):
            b.status, b.paid_at = Bonus.Status.PENDING, None
        else:
            b.status, b.paid_at = Bonus.Status.PAID, now
    created = Bonus.objects.bulk_create(bonuses)
    wallet_post([bonus_posting(b) for b in created
                 if b.status == Bonus.Status.PAID and b.kind in Bonus.PASSIVE_KINDS])
    return created


# --- the payout run --------------------------------------------------------------------------

def payout_run(*, month: date, created_by: User | None = None) -> PayoutRun:
    """Pay the held bonuses of the month containing `month` (any date in it). One run per
    month: a second call pays nothing and returns the first run. A month that has not begun is
    refused with a ValidationError (code `month_not_over`); the current month may be paid early
    (what it earns afterwards waits for the next month's run)."""
    run, _ = payout_run_with_status(month=month, created_by=created_by)
    return run


def payout_run_with_status(*, month: date, created_by: User | None = None) -> tuple[PayoutRun, bool]:
    """`payout_run`, saying whether this call made the run (False: the month was already paid,
    nothing was paid now)."""
    start = selectors.payout_month(month)
    refusal = selectors.payout_refusal(start)
    if refusal:
        raise ValidationError({"month": ValidationError(refusal, code="month_not_over")}, code="month_not_over")
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = PayoutRun.objects.create(month=start, created_by=created_by, created_at=now)
        except IntegrityError:  # another run for the month committed first (or ran before)
            return PayoutRun.objects.get(month=start), False
        bonuses = list(selectors.payable_bonuses(month=start).select_for_update(of=("self",))
                       .select_related("pool_run").order_by("pk")
                       .only("id", "user_id", "kind", "amount", "level", "purchase_id", "pool_run__month"))
        note = f" (payout {start:%Y-%m})"
        by_member = sorted(bonuses, key=lambda b: (b.user_id, b.pk))
        credited = 0
        for i in range(0, len(by_member), PAYOUT_BATCH):
            postings = [bonus_posting(b, note=note) for b in by_member[i:i + PAYOUT_BATCH]]
            keys = {p.idempotency_key for p in postings}
            credited += sum(row.idempotency_key in keys for row in wallet_post(postings))
        if credited != len(bonuses):  # a held bonus already had its credit: never credited twice
            logger.error("mlm: payout %s: %d of %d held bonuses were already credited",
                         f"{start:%Y-%m}", len(bonuses) - credited, len(bonuses))
        ids = [b.pk for b in bonuses]
        for i in range(0, len(ids), PAYOUT_BATCH):
            Bonus.objects.filter(pk__in=ids[i:i + PAYOUT_BATCH]).update(
                status=Bonus.Status.PAID, paid_at=now, payout_run=run)
        run.bonuses = len(bonuses)
        run.total = sum((b.amount for b in bonuses), ZERO)
        PayoutRun.objects.filter(pk=run.pk).update(bonuses=run.bonuses, total=run.total)
        _notify_paid(run, bonuses)
    return run, True


def _notify_paid(run: PayoutRun, bonuses: list[Bonus]) -> None:
    """One notification per member paid (the root excluded), summing what the run credited."""
    from accounts.selectors import system_root
    from mlm.engine import notifications_save

    per_member: dict[int, list] = defaultdict(lambda: [0, ZERO])
    for b in bonuses:
        per_member[b.user_id][0] += 1
        per_member[b.user_id][1] += b.amount
    root_id = system_root().pk if per_member else None
    notifications_save([
        Notification(user_id=uid, kind=Notification.PAYOUT, amount=amount,
                     message=_payout_message(run.month, count, amount))
        for uid, (count, amount) in sorted(per_member.items()) if uid != root_id])


def _payout_message(month: date, count: int, amount: Decimal) -> str:
    return (f"Payout for {month:%B %Y}: {count} held bonus{'es' if count != 1 else ''}, "
            f"{amount:,.2f} USD credited to your passive wallet.")


def payout_run_due(*, today: date | None = None) -> PayoutRun | None:
    """The daily beat: from `payout_day` of month M+1 on, pay month M once. In `immediate`
    mode only a month that still holds bonuses (left from a time in `monthly` mode) is run.
    Returns the run made now, None when there was nothing to do."""
    today = today or timezone.now().date()
    settings = PlanSettings.load()
    if today.day < settings.payout_day:
        return None
    previous = month_start(month_start(today) - timedelta(days=1))
    if PayoutRun.objects.filter(month=previous).exists():
        return None
    if (settings.payout_mode != PlanSettings.PayoutMode.MONTHLY
            and not selectors.payable_bonuses(month=previous).exists()):
        return None
    run, created = payout_run_with_status(month=previous)
    return run if created else None
