"""Writes of the purchases app.

`purchase_create` is a member buying packs with the active wallet.
`purchase_grant` records a purchase paid outside the wallet — a bonus
auto-purchase or an imported legacy purchase — as a credit and a debit of the
same amount on the active wallet (net zero), so the ledger tells the story.

Both write the purchase and its ledger rows in one transaction, under the
buyer's row lock, and send `purchase_completed` after the commit for counted
kinds only.

`purchase_refund` refunds a counted purchase (money-lifecycle §2): under the purchase's
row lock it writes the `Refund`, marks the purchase refunded (it no longer counts),
credits a regular purchase's price back to the active wallet, and sends
`purchase_refunded` after the commit; `mlm` (clawback) and `tokens` (revenue reversal)
take their part through that signal, each exactly once in its own transaction.
`purchase_grant_revoke` reverses a bonus auto-purchase for mlm's clawback.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import Posting, wallet_post
from common.errors import ConflictError
from common.locks import lock_rows
from common.money import to_money
from purchases.models import Option, Purchase, Refund
from purchases.signals import purchase_completed, purchase_refunded

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


# --- refunds (money-lifecycle §2) ------------------------------------------------------------

REFUND_REASON_MAX = 255


def _unknown(purchase: Purchase) -> ValidationError:
    # Each message carries its code (a dict's values keep theirs; `code=` beside a dict is lost).
    return ValidationError({"purchase": ValidationError(f"Unknown purchase {purchase.pk}.", code="unknown_purchase")})


def _send_refunded_after_commit(purchase: Purchase, refund: Refund) -> None:
    def send():
        for receiver, result in purchase_refunded.send_robust(sender=Purchase, purchase=purchase, refund=refund):
            if isinstance(result, Exception):
                logger.error("purchase_refunded receiver %r failed for purchase %s",
                             receiver, purchase.pk, exc_info=result)

    transaction.on_commit(send)


def purchase_refund(*, purchase: Purchase, reason: str = "", refunded_by: User | None = None) -> Refund:
    """Refund a `regular` or `legacy` purchase in full.

    One transaction, under the purchase's row lock: the `Refund` row (who, when, why), the
    purchase marked refunded (no longer counted), and for a `regular` purchase its price
    credited back to the buyer's active wallet (reason `refund`, key `refund:<purchase id>`);
    a `legacy` purchase moves no wallet money. `purchase_refunded` is sent after the commit.

    A bonus auto-purchase is never refunded on its own (`not_refundable`); a second refund
    raises `ConflictError` (`already_refunded`, HTTP 409). Writes nothing when it refuses.
    """
    reason = (reason or "").strip()
    if len(reason) > REFUND_REASON_MAX:
        raise ValidationError({"reason": ValidationError(
            f"The reason is too long ({REFUND_REASON_MAX} characters at most).", code="reason_too_long")})
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().filter(pk=purchase.pk).first()
        if locked is None:
            raise _unknown(purchase)
        if locked.kind not in Purchase.COUNTED_KINDS:
            raise ValidationError({"purchase": ValidationError(
                f"Purchase #{locked.pk} is a bonus auto-purchase: it is taken back with the refund of the "
                "purchase that caused it, never on its own.", code="not_refundable")})
        if locked.refunded_at is not None:
            raise ConflictError({"purchase": ValidationError(
                f"Purchase #{locked.pk} was already refunded ({locked.refunded_at:%Y-%m-%d %H:%M} UTC).",
                code="already_refunded")})
        now = timezone.now()
        refund = Refund.objects.create(purchase=locked, amount=locked.price, reason=reason,
                                       refunded_by=refunded_by, created_at=now)
        Purchase.objects.filter(pk=locked.pk).update(refunded_at=now)
        locked.refunded_at = now
        if locked.kind == Purchase.Kind.REGULAR:
            wallet_post([Posting(user_id=locked.user_id, wallet=Wallet.ACTIVE, amount=locked.price,
                                 reason=LedgerEntry.Reason.REFUND, idempotency_key=f"refund:{locked.pk}",
                                 cause=refund, created_by_id=refunded_by.pk if refunded_by else None,
                                 description=f"Refund of purchase #{locked.pk}")])
        _send_refunded_after_commit(locked, refund)
    purchase.refunded_at = now
    return refund


def purchase_grant_revoke(*, purchase: Purchase, reason: str = "") -> Refund | None:
    """Reverse a bonus auto-purchase (an options bonus taken back by a refund): its credit and
    debit are reversed on the active wallet (two `bonus_reversal` rows, net zero) and it is
    marked refunded with a `Refund` row, so its options no longer count. No signal.

    Idempotent: None when it was already reversed. Called inside mlm's clawback transaction.
    """
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().filter(pk=purchase.pk).first()
        if locked is None:
            raise _unknown(purchase)
        if locked.kind != Purchase.Kind.BONUS:
            raise ValidationError({"purchase": ValidationError(
                f"Purchase #{locked.pk} is not a bonus auto-purchase.", code="not_a_grant")})
        if locked.refunded_at is not None:
            return None
        now = timezone.now()
        refund = Refund.objects.create(purchase=locked, amount=locked.price, reason=reason[:REFUND_REASON_MAX],
                                       created_at=now)
        Purchase.objects.filter(pk=locked.pk).update(refunded_at=now)
        # The debit's reversal first, so the balance never dips below zero in between.
        wallet_post([
            Posting(user_id=locked.user_id, wallet=Wallet.ACTIVE, amount=locked.price,
                    reason=LedgerEntry.Reason.BONUS_REVERSAL, idempotency_key=f"purchase:{locked.pk}:debit:reversal",
                    cause=refund, description=f"Bonus auto-purchase #{locked.pk} reversed"),
            Posting(user_id=locked.user_id, wallet=Wallet.ACTIVE, amount=-locked.price,
                    reason=LedgerEntry.Reason.BONUS_REVERSAL,
                    idempotency_key=f"purchase:{locked.pk}:credit:reversal", cause=refund,
                    description=f"Bonus auto-purchase #{locked.pk} reversed (options revoked)"),
        ])
    purchase.refunded_at = now
    return refund
