"""Reads of the purchases app."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import User, Wallet
from common.pricing import cheapest
from purchases.models import Option, Project, Purchase
from purchases.signals import purchase_refund_preview


def projects_for_sale() -> QuerySet[Project]:
    return (Project.objects.filter(is_active=True)
            .prefetch_related(Prefetch("options", queryset=Option.objects.filter(is_active=True)
                                       .order_by("pack_price"))))


def purchases_for(*, user: User, kind: str | None = None) -> QuerySet[Purchase]:
    qs = Purchase.objects.filter(user=user).select_related("project", "option")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-id")


def cheapest_active_option(*, project_id: int) -> Option | None:
    """The project's active option with the lowest unit price (pack price / pack shares; ties: the
    lowest id): the query here, the choice in `common.pricing.cheapest` (the one home of §7's rule,
    which `mlm.rules` uses too)."""
    return cheapest(Option.objects.filter(project_id=project_id, is_active=True))


def refund_preview(*, purchase: Purchase) -> dict:
    """What a refund of `purchase` takes back, and from whom; writes nothing.

    The purchases part (the wallet credit) is computed here; the other apps add theirs
    through the `purchase_refund_preview` signal (mlm: volumes, bonuses per recipient with
    status and amount, pioneer status; tokens: the pack-sale revenue reversal). After the
    refund it reads the same stored amounts, with the statuses they have now.
    """
    purchase = Purchase.objects.select_related("user", "project", "option").get(pk=purchase.pk)
    preview = {
        "purchase_id": purchase.pk, "buyer_id": purchase.user_id, "buyer_email": purchase.user.email,
        "kind": purchase.kind, "price": purchase.price, "created_at": purchase.created_at,
        "refundable": purchase.kind in Purchase.COUNTED_KINDS and purchase.refunded_at is None,
        "refunded_at": purchase.refunded_at,
        "wallet_credit": ({"user_id": purchase.user_id, "email": purchase.user.email, "wallet": Wallet.ACTIVE.value,
                           "amount": purchase.price} if purchase.kind == Purchase.Kind.REGULAR else None),
        "volumes": [], "bonuses": [], "pioneer": None, "revenue": None,
    }
    # `send`, not `send_robust`: an incomplete list of what a refund takes back must not pass
    # for a complete one.
    for _receiver, part in purchase_refund_preview.send(sender=Purchase, purchase=purchase):
        if part:
            preview.update(part)
    return preview
