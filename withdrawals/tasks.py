"""Celery tasks of the withdrawals app: thin, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import send_mail
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(name="withdrawals.event_email", acks_late=True)
def withdrawal_event_email_task(event_id: int) -> bool:
    """E-mail a withdrawal change to its member, once: the event is claimed (emailed_at set by a
    conditional UPDATE) before sending, so a retried or duplicated task sends nothing. A failed
    send is logged and the claim released, never raised: the money was committed before."""
    from withdrawals.models import WithdrawalEvent

    now = timezone.now()
    if not WithdrawalEvent.objects.filter(pk=event_id, emailed_at__isnull=True).update(emailed_at=now):
        return False
    event = WithdrawalEvent.objects.select_related("withdrawal__user").get(pk=event_id)
    w = event.withdrawal
    try:
        send_mail(subject=f"Withdrawal #{w.pk}: {event.get_status_display().lower()}", message=event.message,
                  from_email=None, recipient_list=[w.user.email])
    except Exception:
        logger.exception("withdrawals: e-mail for event %s failed", event_id)
        WithdrawalEvent.objects.filter(pk=event_id, emailed_at=now).update(emailed_at=None)
        return False
    return True
