"""Signal receivers of the mlm app: thin, they enqueue a task after the commit."""

from __future__ import annotations

from django.dispatch import receiver

from purchases.signals import purchase_completed


@receiver(purchase_completed, dispatch_uid="mlm.purchase_completed")
def on_purchase_completed(sender, purchase, **kwargs):
    if not purchase.is_counted:
        return
    from mlm.tasks import purchase_process_task

    purchase_process_task.delay_on_commit(purchase.pk)
