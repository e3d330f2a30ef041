"""Writes of the purchases app.

`purchase_create` is a member buying packs with the active wallet.
`purchase_grant` records a purchase paid outside the wallet — a bonus
auto-purchase or an imported legacy purchase — as a credit and a debit of the
same amount on the active wallet (net zero), so the ledger tells the story.

Both write the purchase and its ledger rows in one transaction, under the
buyer's row lock, and send `purchase_completed` after the commit for counted
kinds only. `purchase_grant_many` is `purchase_grant` for a batch (the legacy
import): one transaction, a constant number of queries, and ONE
`purchases_completed_bulk` after the commit instead of a signal per purchase.

`purchase_refund` refunds a counted purchase (money-lifecycle §2): under the purchase's
row lock it writes the `Refund`, marks the purchase refunded (it no longer counts),
credits a regular purchase's price back to the active wallet, and sends
`purchase_refunded` after the commit; `mlm` (clawback) and `tokens` (revenue reversal)
take their part through that signal, each exactly once in its own transaction.
`purchase_grant_revoke` reverses a bonus auto-purchase for mlm's clawback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet
from accounts.services import InsufficientFunds, Posting, idempotency_key_clean, wallet_post
from common.errors import ConflictError, IdempotencyConflict, field_error
from common.locks import lock_rows
from common.money import format_money, to_money
from common.text import text_clean
from purchases.models import Option, Purchase, Refund
from purchases.signals import purchase_completed, purchase_refunded, purchases_completed_bulk

logger = logging.getLogger(__name__)

MAX_PACKS = 100_000
IDEMPOTENCY_KEY_MAX_LENGTH = Purchase._meta.get_field("idempotency_key").max_length


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
    """The client's key, stored as it is on the purchase (so its column's length is the bound)."""
    return idempotency_key_clean(idempotency_key, max_length=IDEMPOTENCY_KEY_MAX_LENGTH)


def _option_pk(option: Option | int) -> int:
    if isinstance(option, Option):
        return option.pk
    if isinstance(option, int) and not isinstance(option, bool):
        return option
    raise field_error("option", "Unknown option.", code="unknown_option")


def _purchasable_option(option: Option | int) -> Option:
    try:
        option = Option.objects.select_related("project").get(pk=_option_pk(option))
    except Option.DoesNotExist:
        raise field_error("option", "Unknown option.", code="unknown_option") from None
    if not option.is_active or not option.project.is_active:
        raise field_error("option", f"The option {option} is not for sale.", code="inactive_option")
    return option


def purchase_create(*, user: User, option: Option | int, packs: int = 1,
                    idempotency_key: str | None = None) -> Purchase:
    """Buy `packs` packs of `option` with the member's active wallet.

    The same `idempotency_key` for the same member returns the first purchase
    (and charges nothing). Refuses an inactive option and a short balance.
    """
    return purchase_create_with_status(user=user, option=option, packs=packs,
                                       idempotency_key=idempotency_key)[0]


def purchase_create_with_status(*, user: User, option: Option | int, packs: int = 1,
                                idempotency_key: str | None = None) -> tuple[Purchase, bool]:
    """`purchase_create`, and whether this call bought (False: the key's first purchase returned).

    Decided under the buyer's row lock. The same key with another option or number of packs
    raises `IdempotencyConflict` (code `idempotency_conflict`); a short balance raises
    `InsufficientFunds` (code `insufficient_funds`, not tied to a field: a purchase has no amount).
    """
    if isinstance(packs, bool) or not isinstance(packs, int):
        raise field_error("packs", "packs must be a whole number.", code="invalid_packs")
    if not 1 <= packs <= MAX_PACKS:
        raise field_error("packs", f"packs must be between 1 and {MAX_PACKS}.", code="invalid_packs")
    option_pk = _option_pk(option)
    key = _clean_key(idempotency_key)
    with transaction.atomic():
        # The buyer's row lock serializes this member's purchases (and idempotent retries).
        buyer = lock_rows(User, [user.pk]).get(user.pk)
        if buyer is None:
            raise field_error("user", "Unknown member.", code="unknown_member")
        if key is not None:
            existing = Purchase.objects.filter(user_id=user.pk, idempotency_key=key).first()
            if existing is not None:
                if (existing.kind, existing.option_id, existing.packs) != (Purchase.Kind.REGULAR, option_pk, packs):
                    raise field_error(
                        "idempotency_key",
                        f"This idempotency key was already used for another purchase (#{existing.pk}: "
                        f"{_describe(existing)}). Send a new key for a new purchase.",
                        code="idempotency_conflict", error_class=IdempotencyConflict)
                return existing, False
        if buyer.is_system_root:
            raise field_error("user", "The system root does not buy.", code="system_root")
        option = _purchasable_option(option_pk)
        price = option.pack_price * packs
        purchase = Purchase.objects.create(
            user_id=user.pk, project=option.project, option=option, kind=Purchase.Kind.REGULAR,
            packs=packs, shares=option.pack_shares * packs, price=price, idempotency_key=key)
        try:
            wallet_post([Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=-price,
                                 reason=LedgerEntry.Reason.PURCHASE,
                                 idempotency_key=f"purchase:{purchase.pk}:debit", cause=purchase,
                                 description=f"{packs} × {option}")])
        except InsufficientFunds as exc:
            # wallet_post keys it `amount`; a purchase has no amount field: a non-field error.
            raise InsufficientFunds(
                f"Insufficient active balance for {packs} × {option}: "
                f"{format_money(buyer.balance_active)} USD available, {format_money(price)} USD needed.",
                code="insufficient_funds") from exc
        _send_completed_after_commit(purchase)
    return purchase, True


def _describe(purchase: Purchase) -> str:
    if purchase.kind != Purchase.Kind.REGULAR:
        return f"a {purchase.kind} purchase"
    return f"{purchase.packs} × {purchase.option}"


@dataclass(frozen=True)
class Grant:
    """One purchase for `purchase_grant_many` (the arguments of `purchase_grant`)."""

    user_id: int
    option: Option
    shares: int
    price: Decimal
    kind: str
    idempotency_key: str
    purchased_at: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class _CleanGrant:
    grant: Grant
    price: Decimal
    key: str
    when: datetime
    reason: str


def _grant_clean(grant: Grant) -> _CleanGrant:
    """The rules of a grant, before any query (one home for `purchase_grant` and its bulk form)."""
    if grant.kind not in (Purchase.Kind.BONUS, Purchase.Kind.LEGACY):
        raise field_error("kind", "purchase_grant records bonus and legacy purchases only.", code="invalid_kind")
    shares = grant.shares
    if isinstance(shares, bool) or not isinstance(shares, int) or shares <= 0:
        raise field_error("shares", "shares must be a whole number greater than zero.", code="invalid_shares")
    price = to_money(grant.price, field="price")
    key = _clean_key(grant.idempotency_key)
    if key is None:
        raise field_error("idempotency_key", "purchase_grant needs an idempotency key.", code="required")
    when = grant.purchased_at or timezone.now()
    if timezone.is_naive(when):
        raise field_error("purchased_at", "purchased_at must be timezone-aware.", code="naive_datetime")
    reason = (LedgerEntry.Reason.LEGACY if grant.kind == Purchase.Kind.LEGACY
              else LedgerEntry.Reason.BONUS_PURCHASE)
    return _CleanGrant(grant=grant, price=price, key=key, when=when, reason=reason)


def _grant_postings(purchase: Purchase, clean: _CleanGrant) -> list[Posting]:
    """The credit and the debit of a grant (net zero on the active wallet)."""
    g = clean.grant
    label = g.description or f"{g.shares} × {g.option}"
    return [
        Posting(user_id=g.user_id, wallet=Wallet.ACTIVE, amount=clean.price, reason=clean.reason,
                idempotency_key=f"purchase:{purchase.pk}:credit", cause=purchase,
                description=f"{label} (paid outside the wallet)"),
        Posting(user_id=g.user_id, wallet=Wallet.ACTIVE, amount=-clean.price, reason=clean.reason,
                idempotency_key=f"purchase:{purchase.pk}:debit", cause=purchase, description=label),
    ]


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
    clean = _grant_clean(Grant(user_id=user.pk, option=option, shares=shares, price=price, kind=kind,
                               idempotency_key=idempotency_key, purchased_at=purchased_at,
                               description=description))
    with transaction.atomic():
        lock_rows(User, [user.pk])
        existing = Purchase.objects.filter(user_id=user.pk, idempotency_key=clean.key).first()
        if existing is not None:
            return existing, False
        purchase = Purchase.objects.create(
            user_id=user.pk, project_id=option.project_id, option=option, kind=kind,
            shares=shares, price=clean.price, idempotency_key=clean.key, created_at=clean.when)
        wallet_post(_grant_postings(purchase, clean))
        _send_completed_after_commit(purchase)
    return purchase, True


def purchase_grant_many(*, grants: Sequence[Grant]) -> list[tuple[Purchase, bool]]:
    """`purchase_grant` for many purchases in one transaction and a constant number of
    queries: the buyers locked in pk order, one look-up of the keys already used, one INSERT
    of the purchases (ids in the order given: give them in date order), one `wallet_post`
    batch with every credit and debit. Returns [(purchase, created)] in the order given.

    After the commit it sends `purchases_completed_bulk` ONCE with the counted purchases
    created (legacy), never `purchase_completed` per purchase. Any refusal (ValidationError)
    or database error rolls back the whole batch: a caller that wants rows to fail alone
    retries them one at a time.
    """
    cleaned = [_grant_clean(g) for g in grants]
    if not cleaned:
        return []
    pairs = [(c.grant.user_id, c.key) for c in cleaned]
    if len(set(pairs)) != len(pairs):
        raise field_error("idempotency_key", "The same member and idempotency key twice in one batch.",
                          code="duplicate_idempotency_key")
    with transaction.atomic():
        lock_rows(User, {c.grant.user_id for c in cleaned})
        existing = {(p.user_id, p.idempotency_key): p for p in Purchase.objects.filter(
            user_id__in={u for u, _ in pairs}, idempotency_key__in={k for _, k in pairs})}
        fresh = [c for c in cleaned if (c.grant.user_id, c.key) not in existing]
        created = Purchase.objects.bulk_create([
            Purchase(user_id=c.grant.user_id, project_id=c.grant.option.project_id, option=c.grant.option,
                     kind=c.grant.kind, shares=c.grant.shares, price=c.price, idempotency_key=c.key,
                     created_at=c.when) for c in fresh])
        postings = []
        for purchase, clean in zip(created, fresh, strict=True):
            postings += _grant_postings(purchase, clean)
        wallet_post(postings, savepoint=False)  # new keys (new purchases); any error rolls back the batch
        counted = [p for p in created if p.is_counted]
        if counted:
            _send_completed_bulk_after_commit(counted)
    made = {(p.user_id, p.idempotency_key): p for p in created}
    return [(existing[pair], False) if pair in existing else (made[pair], True) for pair in pairs]


def _send_completed_bulk_after_commit(purchases: list[Purchase]) -> None:
    def send():
        for receiver, result in purchases_completed_bulk.send_robust(sender=Purchase, purchases=purchases):
            if isinstance(result, Exception):
                logger.error("purchases_completed_bulk receiver %r failed for purchases %s…%s",
                             receiver, purchases[0].pk, purchases[-1].pk, exc_info=result)

    transaction.on_commit(send)


# --- refunds (money-lifecycle §2) ------------------------------------------------------------

REFUND_REASON_MAX = 255


def _unknown(purchase: Purchase) -> Exception:
    return field_error("purchase", f"Unknown purchase {purchase.pk}.", code="unknown_purchase")


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
    reason = text_clean(reason, field="reason", multiline=True).strip()
    if len(reason) > REFUND_REASON_MAX:
        raise field_error(
            "reason", f"The reason is too long ({REFUND_REASON_MAX} characters at most).", code="reason_too_long")
    with transaction.atomic():
        locked = Purchase.objects.select_for_update().filter(pk=purchase.pk).first()
        if locked is None:
            raise _unknown(purchase)
        if locked.kind not in Purchase.COUNTED_KINDS:
            raise field_error(
                "purchase", f"Purchase #{locked.pk} is a bonus auto-purchase: it is taken back with the refund of the "
                "purchase that caused it, never on its own.", code="not_refundable")
        if locked.refunded_at is not None:
            raise field_error(
                "purchase", f"Purchase #{locked.pk} was already refunded ({locked.refunded_at:%Y-%m-%d %H:%M} UTC).",
                code="already_refunded", error_class=ConflictError)
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
            raise field_error("purchase", f"Purchase #{locked.pk} is not a bonus auto-purchase.", code="not_a_grant")
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
