"""Signal receivers of the mlm app: thin, they enqueue a task after the commit."""

from __future__ import annotations

from django.dispatch import receiver

from purchases.signals import purchase_completed, purchase_refund_preview, purchase_refunded


@receiver(purchase_completed, dispatch_uid="mlm.purchase_completed")
def on_purchase_completed(sender, purchase, **kwargs):
    if not purchase.is_counted:
        return
    from mlm.tasks import purchase_process_task

    purchase_process_task.delay_on_commit(purchase.pk)


@receiver(purchase_refunded, dispatch_uid="mlm.purchase_refunded")
def on_purchase_refunded(sender, purchase, refund, **kwargs):
    """The clawback runs in its own transaction (a task), exactly once (mlm.refunds)."""
    from mlm.tasks import purchase_clawback_task

    purchase_clawback_task.delay_on_commit(purchase.pk)


@receiver(purchase_refund_preview, dispatch_uid="mlm.purchase_refund_preview")
def on_purchase_refund_preview(sender, purchase, **kwargs):
    from mlm.selectors import refund_preview

    return refund_preview(purchase=purchase)
