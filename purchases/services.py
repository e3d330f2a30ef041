"""Writes of the purchases app.

`purchase_create` is a member buying packs with the active wallet.
`purchase_grant` records a purchase paid outside the wallet — a bonus
auto-purchase or an imported legacy purchase — as a credit and a debit of the
same amount on the active wallet (net zero), so the ledger tells the story.

Both write the purchase and its ledger rows in one transaction, under the
buyer's row lock, and send `purchase_completed` after the commit for counted
kinds only.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import Posting, wallet_post
from common.locks import lock_rows
from common.money import to_money
from purchases.models import Option, Purchase
from purchases.signals import purchase_completed

logger = logging.getLogger(__name__)

MAX_PACKS = 100_000


def _send_completed_after_commit(purchase: Purchase) -> None:
    if not purchase.is_counted:
        return

    def send():
        for receiver, result in purchase_completed.send_robust(sender=Purchase, purchase=purchase):
            if isinstance(result, Exception):
                logger.error("purchase_completed receiver %r failed for purchase %s",
                             receiver, purchase.pk, exc_info=result)

    transaction.on_commit(send)


def _clean_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is None:
        return None
    key = str(idempotency_key).strip()
    if not key:
        return None
    if len(key) > 200:
        raise ValidationError({"idempotency_key": "The idempotency key is too long (200 at most)."})
    return key


def _purchasable_option(option: Option | int) -> Option:
    pk = option.pk if isinstance(option, Option) else option
    try:
        option = Option.objects.select_related("project").get(pk=pk)
    except Option.DoesNotExist:
        raise ValidationError({"option": "Unknown option."}) from None
    if not option.is_active or not option.project.is_active:
        raise ValidationError({"option": f"The option {option} is not for sale."}, code="inactive_option")
    return option


def purchase_create(*, user: User, option: Option | int, packs: int = 1,
                    idempotency_key: str | None = None) -> Purchase:
    """Buy `packs` packs of `option` with the member's active wallet.

    The same `idempotency_key` for the same member returns the first purchase
    (and charges nothing). Refuses an inactive option and a short balance.
    """
    if isinstance(packs, bool) or not isinstance(packs, int):
        raise ValidationError({"packs": "packs must be a whole number."})
    if not 1 <= packs <= MAX_PACKS:
        raise ValidationError({"packs": f"packs must be between 1 and {MAX_PACKS}."})
    key = _clean_key(idempotency_key)
    with transaction.atomic():
        # The buyer's row lock serializes this member's purchases (and idempotent retries).
        buyer = lock_rows(User, [user.pk]).get(user.pk)
        if buyer is None:
            raise ValidationError({"user": "Unknown member."})
        if key is not None:
            existing = Purchase.objects.filter(user_id=user.pk, idempotency_key=key).first()
            if existing is not None:
                return existing
        if buyer.is_system_root:
            raise ValidationError({"user": "The system root does not buy."})
        option = _purchasable_option(option)
        price = option.pack_price * packs
        purchase = Purchase.objects.create(
            user_id=user.pk, project=option.project, option=option, kind=Purchase.Kind.REGULAR,
            packs=packs, shares=option.pack_shares * packs, price=price, idempotency_key=key)
        wallet_post([Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=-price,
                             reason=LedgerEntry.Reason.PURCHASE,
                             idempotency_key=f"purchase:{purchase.pk}:debit", cause=purchase,
                             description=f"{packs} × {option}")])
        _send_completed_after_commit(purchase)
    return purchase


def purchase_grant(*, user: User, option: Option, shares: int, price, kind: str,
                   idempotency_key: str, purchased_at: datetime | None = None,
                   description: str = "") -> tuple[Purchase, bool]:
    """Record a purchase paid outside the wallet (kind `bonus` or `legacy`): the purchase,
    then a credit and a debit of `price` on the active wallet (net zero).

    Idempotent by (member, `idempotency_key`): returns (purchase, created).
    Sends `purchase_completed` after the commit for `legacy`, never for `bonus`.
    The option need not be active (a bonus follows the buyer's option; a legacy
    row follows history).
    """
    if kind not in (Purchase.Kind.BONUS, Purchase.Kind.LEGACY):
        raise ValidationError({"kind": "purchase_grant records bonus and legacy purchases only."})
    if isinstance(shares, bool) or not isinstance(shares, int) or shares <= 0:
        raise ValidationError({"shares": "shares must be a whole number greater than zero."})
    price = to_money(price, field="price")
    key = _clean_key(idempotency_key)
    if key is None:
        raise ValidationError({"idempotency_key": "purchase_grant needs an idempotency key."})
    when = purchased_at or timezone.now()
    if timezone.is_naive(when):
        raise ValidationError({"purchased_at": "purchased_at must be timezone-aware."})
    reason = LedgerEntry.Reason.LEGACY if kind == Purchase.Kind.LEGACY else LedgerEntry.Reason.BONUS_PURCHASE
    with transaction.atomic():
        lock_rows(User, [user.pk])
        existing = Purchase.objects.filter(user_id=user.pk, idempotency_key=key).first()
        if existing is not None:
            return existing, False
        purchase = Purchase.objects.create(
            user_id=user.pk, project_id=option.project_id, option=option, kind=kind,
            shares=shares, price=price, idempotency_key=key, created_at=when)
        label = description or f"{shares} × {option}"
        wallet_post([
            Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=price, reason=reason,
                    idempotency_key=f"purchase:{purchase.pk}:credit", cause=purchase,
                    description=f"{label} (paid outside the wallet)"),
            Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=-price, reason=reason,
                    idempotency_key=f"purchase:{purchase.pk}:debit", cause=purchase,
                    description=label),
        ])
        _send_completed_after_commit(purchase)
    return purchase, True
