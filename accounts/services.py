"""Writes of the accounts app: members, the sponsor tree and every wallet movement.

`wallet_post` is the only code that changes a balance. It locks the members'
rows in primary-key order, skips postings whose idempotency key is already in
the ledger, writes the ledger rows and the cached balances in one transaction,
and refuses anything that would take a balance below zero.

It also keeps the clawback debt (money-lifecycle §2): a passive debit posted with
`allow_debt=True` (a refund taking back a bonus) takes what the passive balance has and
records the rest as debt (`DebtEntry`, reason `clawback`); every later positive passive
credit to a member in debt pays the debt first — an extra `clawback` ledger debit of
min(credit, debt) right after the credit, and a `repayment` debt entry — in the same call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.db.models import Value
from django.db.models.functions import Concat, Substr

from accounts.models import DebtEntry, LedgerEntry, User, Wallet, path_encode
from accounts.selectors import system_root
from common.locks import lock_rows
from common.money import to_money

BALANCE_FIELD = {Wallet.ACTIVE: "balance_active", Wallet.PASSIVE: "balance_passive"}


class InsufficientFunds(ValidationError):
    """A debit larger than the wallet's balance."""


# --- members ---------------------------------------------------------------------------------

def system_root_ensure(*, using: str = "default") -> User:
    """The system root, created if missing (idempotent)."""
    root = User.objects.using(using).filter(is_system_root=True).first()
    if root is None:
        with transaction.atomic(using=using):
            root = User(email=settings.SYSTEM_ROOT_EMAIL, is_system_root=True, first_name="System",
                        last_name="Root", referral_code="ROOT0000")
            root.set_unusable_password()
            root.save(using=using)
            root.path = path_encode(root.pk)
            User.objects.using(using).filter(pk=root.pk).update(path=root.path, depth=0)
    return root


def member_create(*, email: str, password: str | None = None, sponsor: User | None = None,
                  first_name: str = "", last_name: str = "", is_staff: bool = False,
                  is_superuser: bool = False, validate_password_strength: bool = False) -> User:
    """Register a member under `sponsor` (the system root when None)."""
    email = User.objects.normalize_email((email or "").strip()).lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid e-mail address."}) from None
    if password and validate_password_strength:
        try:
            validate_password(password)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
    with transaction.atomic():
        parent = sponsor if sponsor is not None else system_root()
        parent = User.objects.only("id", "path", "depth", "is_active").get(pk=parent.pk)
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError({"email": "A member with this e-mail already exists."})
        user = User(email=email, first_name=first_name or "", last_name=last_name or "",
                    sponsor=parent, is_staff=is_staff, is_superuser=is_superuser)
        user.set_password(password) if password else user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise ValidationError({"email": "A member with this e-mail already exists."}) from None
        user.path = parent.path + path_encode(user.pk)
        user.depth = parent.depth + 1
        User.objects.filter(pk=user.pk).update(path=user.path, depth=user.depth)
    return user


def member_sponsor_change(*, user: User, sponsor: User) -> User:
    """Move `user` (with its whole subtree) under `sponsor`. Refuses cycles and the root.

    Volumes that depend on the tree must be recomputed afterwards (`rebuild_volumes`).
    """
    with transaction.atomic():
        user, sponsor = (User.objects.select_for_update().get(pk=user.pk),
                         User.objects.get(pk=sponsor.pk))
        if user.is_system_root:
            raise ValidationError({"sponsor": "The system root has no sponsor."})
        if sponsor.path.startswith(user.path):
            raise ValidationError({"sponsor": "That sponsor is in this member's own downline: "
                                              "the change would make a cycle."})
        old_prefix, new_prefix = user.path, sponsor.path + path_encode(user.pk)
        depth_delta = sponsor.depth + 1 - user.depth
        User.objects.filter(path__startswith=old_prefix).update(
            path=Concat(Value(new_prefix), Substr("path", len(old_prefix) + 1),
                        output_field=models.CharField()),
            depth=models.F("depth") + depth_delta,
        )
        User.objects.filter(pk=user.pk).update(sponsor=sponsor)
        user.refresh_from_db()
    return user


# --- wallets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Posting:
    """One intended balance change: signed `amount` on `wallet` of `user_id`.

    `allow_debt=True` (passive debits only): take what the balance has and record the rest
    as the member's clawback debt instead of refusing the posting.
    """

    user_id: int
    wallet: str
    amount: Decimal
    reason: str
    idempotency_key: str
    description: str = ""
    cause: models.Model | None = field(default=None, compare=False)
    created_by_id: int | None = None
    created_at: object | None = None
    allow_debt: bool = False


# The suffix of the idempotency key of the clawback debit that follows a passive credit.
CLAWBACK_KEY_SUFFIX = ":clawback"


def wallet_post(postings: Sequence[Posting]) -> list[LedgerEntry]:
    """Apply `postings` atomically. Returns the ledger rows created (already-present
    idempotency keys are skipped, so a retry creates nothing).

    Debt: a posting with `allow_debt` debits min(amount, balance) and adds the rest to
    `User.clawback_debt` (a `DebtEntry` with the posting's key; no ledger row when the
    balance is zero). A positive passive credit to a member in debt is followed by a
    `clawback` debit of min(credit, debt) (key `<key>:clawback`) and a repayment entry.

    Queries: one lock, one key look-up, one balance UPDATE, one ledger INSERT —
    whatever the number of postings and members; plus one debt-key look-up when a
    posting allows debt and one debt INSERT when a debt changes.
    """
    if not postings:
        return []
    for p in postings:
        if p.wallet not in BALANCE_FIELD:
            raise ValidationError({"wallet": f"Unknown wallet {p.wallet!r}."})
        if not isinstance(p.amount, Decimal) or not p.amount.is_finite() or p.amount == 0:
            raise ValidationError({"amount": "A posting needs a non-zero finite Decimal amount."})
        if p.allow_debt and (p.wallet != Wallet.PASSIVE or p.amount > 0):
            raise ValidationError({"amount": ValidationError("Only a passive debit can leave a clawback debt.",
                                                             code="debt_not_allowed")})
    keys = [p.idempotency_key for p in postings]
    if len(set(keys)) != len(keys):
        raise ValidationError("Duplicate idempotency keys in one posting batch.")

    with transaction.atomic():
        users = lock_rows(User, (p.user_id for p in postings))
        missing = {p.user_id for p in postings} - users.keys()
        if missing:
            raise ValidationError(f"Unknown member(s): {sorted(missing)}.")
        done = set(LedgerEntry.objects.filter(idempotency_key__in=keys)
                   .values_list("idempotency_key", flat=True))
        debt_keys = [p.idempotency_key for p in postings if p.allow_debt]
        if debt_keys:  # a debit the balance could not cover at all left only a debt entry
            done |= set(DebtEntry.objects.filter(idempotency_key__in=debt_keys)
                        .values_list("idempotency_key", flat=True))
        todo = [p for p in postings if p.idempotency_key not in done]
        if not todo:
            return []
        content_types = {}
        rows: list[LedgerEntry] = []
        debts: list[DebtEntry] = []

        def cause_of(p: Posting):
            if p.cause is None:
                return None, ""
            model = type(p.cause)
            if model not in content_types:
                content_types[model] = ContentType.objects.get_for_model(model)
            return content_types[model], str(p.cause.pk)

        for p in todo:
            user = users[p.user_id]
            attr = BALANCE_FIELD[p.wallet]
            balance = getattr(user, attr)
            amount = p.amount
            cause_type, cause_id = cause_of(p)
            if p.allow_debt:
                taken = min(balance, -amount)
                short = -amount - taken
                if short > 0:
                    user.clawback_debt += short
                    debts.append(DebtEntry(
                        user_id=p.user_id, amount=short, debt_after=user.clawback_debt,
                        reason=DebtEntry.Reason.CLAWBACK, description=p.description[:255],
                        idempotency_key=p.idempotency_key, cause_type=cause_type, cause_id=cause_id))
                if taken == 0:
                    continue
                amount = -taken
            new_balance = balance + amount
            if new_balance < 0:
                raise InsufficientFunds(
                    {"amount": f"Insufficient {p.wallet} balance: {getattr(user, attr)} available, "
                               f"{-p.amount} needed."},
                    code="insufficient_funds")
            setattr(user, attr, new_balance)
            extra = {"created_at": p.created_at} if p.created_at is not None else {}
            rows.append(LedgerEntry(
                user_id=p.user_id, wallet=p.wallet, amount=amount, balance_after=new_balance,
                reason=p.reason, description=p.description[:255],
                idempotency_key=p.idempotency_key, cause_type=cause_type, cause_id=cause_id,
                created_by_id=p.created_by_id, **extra))
            if p.wallet == Wallet.PASSIVE and amount > 0 and user.clawback_debt > 0:
                # The debt is paid first from this credit.
                repaid = min(amount, user.clawback_debt)
                user.clawback_debt -= repaid
                user.balance_passive -= repaid
                key = p.idempotency_key + CLAWBACK_KEY_SUFFIX
                rows.append(LedgerEntry(
                    user_id=p.user_id, wallet=p.wallet, amount=-repaid, balance_after=user.balance_passive,
                    reason=LedgerEntry.Reason.CLAWBACK, description=f"Clawback debt repaid from: {p.description}"[:255],
                    idempotency_key=key, cause_type=cause_type, cause_id=cause_id, **extra))
                debts.append(DebtEntry(
                    user_id=p.user_id, amount=-repaid, debt_after=user.clawback_debt,
                    reason=DebtEntry.Reason.REPAYMENT, description=p.description[:255],
                    idempotency_key=key, cause_type=cause_type, cause_id=cause_id))
        changed = [users[uid] for uid in sorted({p.user_id for p in todo})]
        User.objects.bulk_update(changed, ["balance_active", "balance_passive", "clawback_debt"])
        if debts:
            DebtEntry.objects.bulk_create(debts)
        return LedgerEntry.objects.bulk_create(rows) if rows else []


def wallet_deposit(*, user: User, amount, reference: str, created_by: User | None = None,
                   description: str = "") -> LedgerEntry:
    """Credit the active wallet. The same `reference` twice credits once: the second
    call returns the first entry (and refuses a different member or amount)."""
    amount = to_money(amount)
    reference = (reference or "").strip()
    if not reference:
        raise ValidationError({"reference": "A deposit needs a reference."})
    if len(reference) > 150:
        raise ValidationError({"reference": "The reference is too long (150 characters at most)."})
    key = f"deposit:{reference}"
    wallet_post([Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=amount,
                         reason=LedgerEntry.Reason.DEPOSIT, idempotency_key=key,
                         description=description or f"Deposit {reference}",
                         created_by_id=created_by.pk if created_by else None)])
    entry = LedgerEntry.objects.get(idempotency_key=key)
    if entry.user_id != user.pk or entry.amount != amount:
        raise ValidationError({"reference": f"Reference {reference!r} was already used for a "
                                            "different deposit."}, code="reference_conflict")
    user.balance_active = User.objects.values_list("balance_active", flat=True).get(pk=user.pk)
    return entry


def wallet_credit(*, user: User, wallet: str, amount, reason: str, idempotency_key: str,
                  cause: models.Model | None = None, description: str = "") -> LedgerEntry | None:
    """Credit one wallet; returns the new entry, or None when the key was already posted."""
    rows = wallet_post([Posting(user_id=user.pk, wallet=wallet, amount=to_money(amount),
                                reason=reason, idempotency_key=idempotency_key, cause=cause,
                                description=description)])
    return rows[0] if rows else None


def wallet_transfer_to_active(*, user: User, amount, idempotency_key: str | None = None) -> list[LedgerEntry]:
    """Move `amount` from the member's passive wallet to its active wallet."""
    amount = to_money(amount)
    key = f"transfer:{user.pk}:{idempotency_key or uuid.uuid4().hex}"
    rows = wallet_post([
        Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=-amount,
                reason=LedgerEntry.Reason.TRANSFER, idempotency_key=f"{key}:out",
                description="Transfer to active wallet"),
        Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=amount,
                reason=LedgerEntry.Reason.TRANSFER, idempotency_key=f"{key}:in",
                description="Transfer from passive wallet"),
    ])
    if not rows:  # a retry with the same key: return what the first call wrote
        rows = list(LedgerEntry.objects.filter(idempotency_key__in=[f"{key}:out", f"{key}:in"])
                    .order_by("id"))
    return rows

