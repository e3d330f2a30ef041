"""Signal receivers of the mlm app: thin, they enqueue a task after the commit.

`purchase_completed` (one purchase) enqueues its processing; `purchases_completed_bulk` (a
batch written together, the legacy import) enqueues ONE task for the batch, which processes
it in id order with `purchase_process_many`.
"""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.dispatch import receiver

from accounts.signals import sponsor_changing
from purchases.signals import (
    purchase_completed,
    purchase_refund_preview,
    purchase_refunded,
    purchases_completed_bulk,
)


@receiver(purchase_completed, dispatch_uid="mlm.purchase_completed")
def on_purchase_completed(sender, purchase, **kwargs):
    if not purchase.is_counted:
        return
    from mlm.tasks import purchase_process_task

    purchase_process_task.delay_on_commit(purchase.pk)


@receiver(purchases_completed_bulk, dispatch_uid="mlm.purchases_completed_bulk")
def on_purchases_completed_bulk(sender, purchases, **kwargs):
    ids = [p.pk for p in purchases if p.is_counted]
    if not ids:
        return
    from mlm.tasks import purchases_process_many_task

    purchases_process_many_task.delay_on_commit(ids)


@receiver(purchase_refunded, dispatch_uid="mlm.purchase_refunded")
def on_purchase_refunded(sender, purchase, refund, **kwargs):
    """The clawback runs in its own transaction (a task), exactly once (mlm.refunds)."""
    from mlm.tasks import purchase_clawback_task

    purchase_clawback_task.delay_on_commit(purchase.pk)


@receiver(purchase_refund_preview, dispatch_uid="mlm.purchase_refund_preview")
def on_purchase_refund_preview(sender, purchase, **kwargs):
    from mlm.selectors import refund_preview

    return refund_preview(purchase=purchase)


def _plan_changed(sender, **kwargs):
    """A rank or tier changed: bump the plan's version so every process reloads it."""
    from django.db.models import F

    from mlm.models import PlanSettings
    from mlm.selectors import plan_cache_clear

    PlanSettings.objects.filter(pk=PlanSettings.SINGLETON_PK).update(plan_version=F("plan_version") + 1)
    plan_cache_clear()


def connect_plan_receivers():
    from django.db.models.signals import post_delete, post_save

    from mlm.models import InvestmentTier, Rank

    for model in (Rank, InvestmentTier):
        post_save.connect(_plan_changed, sender=model, dispatch_uid=f"mlm.plan_changed.save.{model.__name__}")
        post_delete.connect(_plan_changed, sender=model, dispatch_uid=f"mlm.plan_changed.delete.{model.__name__}")


@receiver(sponsor_changing, dispatch_uid="mlm.sponsor_changing")
def on_sponsor_changing(sender, user, **kwargs):
    """Before a subtree moves: its processed purchases keep the path they raised FV along
    (only those still reading "the buyer's path now"), so a refund takes it back from there."""
    from mlm.models import ProcessedPurchase
    from purchases.models import Purchase

    ProcessedPurchase.objects.filter(fv_path="", purchase__user__path__startswith=user.path).update(
        fv_path=Subquery(Purchase.objects.filter(pk=OuterRef("purchase_id")).values("user__path")[:1]))
