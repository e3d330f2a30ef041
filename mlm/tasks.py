"""Celery tasks of the mlm app: thin, idempotent (acks_late), they call services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="mlm.purchase_process", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)
def purchase_process_task(purchase_id: int) -> int:
    """The purchase and those still waiting before it, as one batch. Returns how many were processed."""
    from mlm.services import purchase_process_pending

    return purchase_process_pending(purchase_id=purchase_id)


@shared_task(name="mlm.purchases_process_many", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)
def purchases_process_many_task(purchase_ids: list[int]) -> int:
    """A batch of purchases written together (the legacy import), in id order, in batches.
    Returns how many were processed now (0 on a retry: each purchase once)."""
    from mlm.services import purchase_process_many

    return purchase_process_many(purchase_ids=purchase_ids)


@shared_task(name="mlm.purchase_clawback", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)
def purchase_clawback_task(purchase_id: int) -> bool:
    from mlm.refunds import purchase_clawback

    return purchase_clawback(purchase_id=purchase_id).done


@shared_task(name="mlm.purchases_sweep", acks_late=True)
def purchases_sweep_task() -> int:
    """The lost-message sweeper: counted purchases left unprocessed, then refunds whose
    clawback did not run (one beat row for both)."""
    from mlm.refunds import refunds_sweep
    from mlm.services import purchases_sweep

    minutes = getattr(settings, "MLM_SWEEP_AFTER_MINUTES", 5)
    return purchases_sweep(older_than_minutes=minutes) + refunds_sweep(older_than_minutes=minutes)


@shared_task(name="mlm.team_volume_drain", acks_late=True)
def team_volume_drain_task() -> int:
    from mlm.services import team_volume_drain

    return team_volume_drain()


@shared_task(name="mlm.ranks_update", acks_late=True)
def ranks_update_task() -> int:
    from mlm.services import ranks_update

    return ranks_update()


@shared_task(name="mlm.loyalty_streaks_update", acks_late=True)
def loyalty_streaks_update_task() -> int:
    """Daily: store every member's loyalty streak (§8a); the day after the Grace Day resets it."""
    from mlm.services import loyalty_streaks_update

    return loyalty_streaks_update()


@shared_task(name="mlm.global_pool_run", acks_late=True)
def global_pool_run_task(month: str | None = None) -> int:
    """Pays the pool of `month` (ISO date), by default the previous month."""
    from datetime import date

    from mlm.services import global_pool_run

    if month:
        when = date.fromisoformat(month)
    else:
        when = timezone.now().date().replace(day=1) - timedelta(days=1)
    return global_pool_run(month=when).pk


@shared_task(name="mlm.payout_run_due", acks_late=True)
def payout_run_due_task() -> int | None:
    """The daily check: from `payout_day` on, pay the previous month's held bonuses once.
    Safe to run twice or at the same time as a click (one PayoutRun per month)."""
    from mlm.payouts import payout_run_due

    run = payout_run_due()
    return run.pk if run else None


@shared_task(name="mlm.notifications_email", acks_late=True)
def notifications_email_task(notification_ids: list[int]) -> int:
    """E-mail the notifications (once each). A failure is logged, never raised: the money
    was committed before this ran."""
    from mlm.models import Notification

    sent: list[int] = []
    rows = Notification.objects.filter(pk__in=notification_ids, emailed_at__isnull=True).select_related("user")
    try:
        for n in rows:
            try:
                send_mail(subject=n.get_kind_display(), message=n.message, from_email=None,
                          recipient_list=[n.user.email])
            except Exception:
                logger.exception("mlm: e-mail for notification %s failed", n.pk)
                continue
            sent.append(n.pk)
    finally:  # the ones sent are marked in one UPDATE, even when the loop is interrupted
        if sent:
            Notification.objects.filter(pk__in=sent).update(emailed_at=timezone.now())
    return len(sent)
