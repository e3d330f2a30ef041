"""Writes of the withdrawals app (money-lifecycle.md §3).

    requested ──approve──▶ approved ──mark paid──▶ paid
        │  └──────reject──────┤
        │                     ▼
        └──cancel (member)──▶ cancelled / rejected: the reserve is credited back

`withdrawal_request` reserves the amount at once: the request row and a passive `withdrawal`
debit of the whole amount in one transaction, under the member's row lock, so two requests can
never spend the same money and a retried request (same `Idempotency-Key`) is found under the
lock. Each transition locks the withdrawal row (`SELECT … FOR UPDATE`), checks the state, and
refuses the wrong one with `ConflictError` (→ 409); a rejection or cancellation credits the
amount back (`withdrawal_return`) in the same transaction. The ledger keys
(`withdrawal:<id>`, `withdrawal_return:<id>`) make each movement happen at most once.

Every change writes a `WithdrawalEvent` (history + the member's notification) in the same
transaction; after the commit the event is e-mailed by a Celery task and the
`withdrawal_changed` signal is sent (other apps may listen; this app imports only accounts).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import LedgerEntry, User, Wallet, WalletSettings
from accounts.services import Posting, idempotency_key_clean, wallet_post
from common.errors import ConflictError, IdempotencyConflict, SelfDealingError, field_error
from common.locks import lock_rows
from common.money import CENT, to_money
from common.text import text_clean
from withdrawals.addresses import destination_check
from withdrawals.models import Withdrawal, WithdrawalEvent
from withdrawals.signals import withdrawal_changed

logger = logging.getLogger(__name__)

TX_REF_MAX_LENGTH = 128
REASON_MAX_LENGTH = 255


def _amount_clean(amount) -> Decimal:
    amount = to_money(amount)
    if amount != amount.quantize(CENT):
        raise field_error("amount", f"Withdrawals are in whole cents: {amount} has more than 2 decimal places.",
                      code="invalid_amount")
    return amount.quantize(CENT)


def _notify(withdrawal: Withdrawal, *, actor_id: int | None, message: str) -> WithdrawalEvent:
    """Record the change and, after the commit, e-mail it and send `withdrawal_changed`."""
    event = WithdrawalEvent.objects.create(withdrawal=withdrawal, status=withdrawal.status, actor_id=actor_id,
                                           message=message[:255])

    def send():
        for receiver, result in withdrawal_changed.send_robust(sender=Withdrawal, withdrawal=withdrawal,
                                                               event=event):
            if isinstance(result, Exception):
                logger.error("withdrawal_changed receiver %r failed for withdrawal %s", receiver,
                             withdrawal.pk, exc_info=result)

    transaction.on_commit(send)
    from withdrawals.tasks import withdrawal_event_email_task

    withdrawal_event_email_task.delay_on_commit(event.pk)
    return event


def _pk(user: User | None) -> int | None:
    return user.pk if user is not None else None


def _sync(target: Withdrawal, source: Withdrawal) -> None:
    """Give the caller's instance the state just written (no query)."""
    if target is source:
        return
    for f in Withdrawal._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))


# --- request ---------------------------------------------------------------------------------

def withdrawal_request_with_status(*, user: User, amount, destination: str, method: str = Withdrawal.Method.USDT_TRC20,
                                   idempotency_key: str | None = None) -> tuple[Withdrawal, bool]:
    """`withdrawal_request`, also saying whether this call created the request (False: the
    same key was used before; decided under the member's row lock)."""
    amount = _amount_clean(amount)
    destination = destination_check(method=method, destination=destination)
    key = idempotency_key_clean(idempotency_key)
    with transaction.atomic():
        member = lock_rows(User, [user.pk]).get(user.pk)
        if member is None:
            raise field_error("user", "Unknown member.", code="unknown_member")
        if key is not None:
            existing = Withdrawal.objects.filter(user_id=user.pk, idempotency_key=key).first()
            if existing is not None:
                if (existing.amount, existing.destination, existing.method) != (amount, destination, method):
                    raise field_error("idempotency_key",
                                  f"This idempotency key was used for withdrawal #{existing.pk} "
                                  f"({existing.amount:,.2f} USD to {existing.destination}), with a different "
                                  "amount, destination or method.",
                                  code="idempotency_conflict", error_class=IdempotencyConflict)
                return existing, False
        if member.is_system_root:
            raise field_error("user", "The system root does not withdraw.", code="root_withdrawal")
        config = WalletSettings.load()
        if amount < config.withdrawal_min:
            raise field_error("amount", f"The smallest withdrawal is {config.withdrawal_min:,.2f} USD; "
                                    f"{amount:,.2f} USD is below it.", code="below_minimum")
        if amount <= config.withdrawal_fee:
            raise field_error("amount", f"The amount must be more than the {config.withdrawal_fee:,.2f} USD fee.",
                          code="below_fee")
        withdrawal = Withdrawal.objects.create(
            user_id=user.pk, method=method, destination=destination, amount=amount, fee=config.withdrawal_fee,
            net_amount=amount - config.withdrawal_fee, idempotency_key=key)
        # Raises InsufficientFunds (code insufficient_funds) when the passive wallet is short:
        # the request row rolls back with it.
        wallet_post([Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=-amount,
                             reason=LedgerEntry.Reason.WITHDRAWAL, idempotency_key=withdrawal.reserve_key,
                             cause=withdrawal, description=f"Withdrawal #{withdrawal.pk} to {destination}")])
        _notify(withdrawal, actor_id=user.pk,
                message=f"Withdrawal #{withdrawal.pk} of {amount:,.2f} USD requested: {withdrawal.net_amount:,.2f} "
                        f"USD to {destination} after the {withdrawal.fee:,.2f} USD fee.")
        user.balance_passive = User.objects.values_list("balance_passive", flat=True).get(pk=user.pk)
    return withdrawal, True


def withdrawal_request(*, user: User, amount, destination: str, method: str = Withdrawal.Method.USDT_TRC20,
                       idempotency_key: str | None = None) -> Withdrawal:
    """Ask to withdraw `amount` from the passive wallet to `destination` (checked for `method`;
    a `USDT-TRC20` address is `T` + 33 base58 characters with a valid base58check checksum).

    The minimum and the flat fee come from `WalletSettings`; the member receives
    `amount − fee`. The amount is reserved at once (a passive `withdrawal` debit). The same
    `idempotency_key` for the same member returns the first request; with a different amount,
    destination or method it raises `IdempotencyConflict` (→ 422). Refusals (ValidationError,
    nothing written): `below_minimum`, `below_fee`, `insufficient_funds`, `invalid_address`,
    `invalid_method`, `invalid_amount` (more than 2 decimal places), `invalid_idempotency_key`.
    """
    withdrawal, _ = withdrawal_request_with_status(user=user, amount=amount, destination=destination,
                                                   method=method, idempotency_key=idempotency_key)
    return withdrawal


# --- transitions -----------------------------------------------------------------------------

def _locked(withdrawal: Withdrawal, *, allowed: tuple[str, ...], action: str) -> Withdrawal:
    """The withdrawal row, locked; ConflictError unless its status is in `allowed`.
    Must run inside the transition's atomic block."""
    locked = Withdrawal.objects.select_for_update().filter(pk=withdrawal.pk).first()
    if locked is None:
        raise field_error("withdrawal", f"Unknown withdrawal #{withdrawal.pk}.", code="unknown_withdrawal")
    if locked.status not in allowed:
        raise field_error("status", f"Withdrawal #{locked.pk} is {locked.status}: it cannot be {action} "
                                f"(only a {' or '.join(allowed)} one can).",
                      code="invalid_transition", error_class=ConflictError)
    return locked


def _not_their_own(withdrawal: Withdrawal, actor: User | None, action: str) -> None:
    """An operator never approves or pays their own withdrawal: another one must (403)."""
    if actor is not None and actor.pk == withdrawal.user_id:
        raise field_error("withdrawal", f"Withdrawal #{withdrawal.pk} is your own: another operator must {action} "
                                        "it.", code="own_withdrawal", error_class=SelfDealingError)


def _credit_back(withdrawal: Withdrawal) -> None:
    wallet_post([Posting(user_id=withdrawal.user_id, wallet=Wallet.PASSIVE, amount=withdrawal.amount,
                         reason=LedgerEntry.Reason.WITHDRAWAL_RETURN, idempotency_key=withdrawal.return_key,
                         cause=withdrawal,
                         description=f"Withdrawal #{withdrawal.pk} {withdrawal.status}: amount returned")])


def _audited(withdrawal: Withdrawal, actor: User | None) -> None:
    """The withdrawal's history row (simple-history) names the operator, also when no request
    is around (a task, the shell); without an actor the signed-in user of the request is named."""
    if actor is not None:
        withdrawal._history_user = actor


def withdrawal_approve(*, withdrawal: Withdrawal, approved_by: User | None = None) -> Withdrawal:
    """requested → approved (an operator checked it). ConflictError (409) from any other state."""
    _not_their_own(withdrawal, approved_by, "approve")
    with transaction.atomic():
        w = _locked(withdrawal, allowed=(Withdrawal.Status.REQUESTED,), action="approved")
        w.status, w.approved_by, w.approved_at = Withdrawal.Status.APPROVED, approved_by, timezone.now()
        _audited(w, approved_by)
        w.save(update_fields=["status", "approved_by", "approved_at"])
        _notify(w, actor_id=_pk(approved_by),
                message=f"Withdrawal #{w.pk} of {w.amount:,.2f} USD approved: it will be paid with the next "
                        "payment batch.")
    _sync(withdrawal, w)
    return w


def withdrawal_mark_paid(*, withdrawal: Withdrawal, tx_ref: str, paid_by: User | None = None) -> Withdrawal:
    """approved → paid, with the external transaction reference (required). ConflictError (409)
    from any other state."""
    tx_ref = text_clean(tx_ref, field="tx_ref").strip() if isinstance(tx_ref, str) else ""
    if not tx_ref:
        raise field_error("tx_ref", "Give the payment's transaction reference.", code="required")
    if len(tx_ref) > TX_REF_MAX_LENGTH:
        raise field_error("tx_ref", f"The transaction reference is too long ({TX_REF_MAX_LENGTH} characters at most).",
                      code="invalid_tx_ref")
    _not_their_own(withdrawal, paid_by, "mark paid")
    with transaction.atomic():
        w = _locked(withdrawal, allowed=(Withdrawal.Status.APPROVED,), action="marked paid")
        w.status, w.tx_ref, w.paid_by, w.paid_at = Withdrawal.Status.PAID, tx_ref, paid_by, timezone.now()
        _audited(w, paid_by)
        w.save(update_fields=["status", "tx_ref", "paid_by", "paid_at"])
        _notify(w, actor_id=_pk(paid_by),
                message=f"Withdrawal #{w.pk}: {w.net_amount:,.2f} USD sent to {w.destination} (transaction {tx_ref}).")
    _sync(withdrawal, w)
    return w


def withdrawal_reject(*, withdrawal: Withdrawal, reason: str, rejected_by: User | None = None) -> Withdrawal:
    """requested or approved → rejected (a reason is required); the amount is credited back to
    the passive wallet. ConflictError (409) from any other state."""
    reason = text_clean(reason, field="reason", multiline=True).strip() if isinstance(reason, str) else ""
    if not reason:
        raise field_error("reason", "Say why the withdrawal is rejected.", code="required")
    if len(reason) > REASON_MAX_LENGTH:
        raise field_error("reason", f"The reason is too long ({REASON_MAX_LENGTH} characters at most).",
                      code="invalid_reason")
    with transaction.atomic():
        w = _locked(withdrawal, allowed=Withdrawal.HELD, action="rejected")
        w.status, w.reason = Withdrawal.Status.REJECTED, reason
        w.rejected_by, w.rejected_at = rejected_by, timezone.now()
        _audited(w, rejected_by)
        w.save(update_fields=["status", "reason", "rejected_by", "rejected_at"])
        _credit_back(w)
        _notify(w, actor_id=_pk(rejected_by),
                message=f"Withdrawal #{w.pk} rejected: {reason} The {w.amount:,.2f} USD are back in your passive "
                        "wallet.")
    _sync(withdrawal, w)
    return w


def withdrawal_cancel(*, withdrawal: Withdrawal) -> Withdrawal:
    """requested → cancelled, by the member; the amount is credited back to the passive wallet.
    ConflictError (409) once an operator approved it (or from any other state)."""
    with transaction.atomic():
        w = _locked(withdrawal, allowed=(Withdrawal.Status.REQUESTED,), action="cancelled")
        w.status, w.cancelled_at = Withdrawal.Status.CANCELLED, timezone.now()
        w.save(update_fields=["status", "cancelled_at"])
        _credit_back(w)
        _notify(w, actor_id=w.user_id, message=f"Withdrawal #{w.pk} cancelled: the {w.amount:,.2f} USD are back in "
                                       "your passive wallet.")
    _sync(withdrawal, w)
    return w
