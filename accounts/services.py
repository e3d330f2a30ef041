"""Writes of the accounts app: members, the sponsor tree and every wallet movement.

`wallet_post` is the only code that changes a balance. It locks the members'
rows in primary-key order, skips postings whose idempotency key is already in
the ledger, writes the ledger rows and the cached balances in one transaction,
and refuses anything that would take a balance below zero or past what a money
column holds.

Transfers (passive → active with the transfer bonus, member → member) are postings through it.
The withdrawal services live in the `withdrawals` app and are re-exported here lazily.

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
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.db.models import Value
from django.db.models.functions import Concat, Lower, Substr

from accounts.models import LINE_MAX_LEVELS, DebtEntry, LedgerEntry, User, Wallet, WalletSettings, path_encode
from accounts.selectors import system_root
from accounts.signals import sponsor_changing
from common.bulk import insert_many, update_many
from common.errors import IdempotencyConflict, field_error
from common.locks import lock_rows
from common.money import MONEY_DECIMAL_PLACES, MONEY_MAX, MONEY_QUANTUM, format_money, round_money, to_money
from common.text import text_clean

BALANCE_FIELD = {Wallet.ACTIVE: "balance_active", Wallet.PASSIVE: "balance_passive"}
LEDGER_KEY_MAX_LENGTH = LedgerEntry._meta.get_field("idempotency_key").max_length
DEPOSIT_REFERENCE_MAX_LENGTH = 150


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


def _member_email(email: str) -> str:
    """A new member's e-mail as stored (trimmed, lower-case), or `invalid_email`."""
    email = User.objects.normalize_email((email or "").strip()).lower()
    try:
        validate_email(email)
    except ValidationError:
        raise field_error("email", "Enter a valid e-mail address.", code="invalid_email") from None
    return email


def _email_taken(email: str) -> ValidationError:
    return field_error("email", f"A member with this e-mail already exists{f' ({email})' if email else ''}.",
                       code="email_taken")


def line_depth_check(deepest: int) -> None:
    """The tree's one depth rule: a member ``deepest`` levels below the root fits the path's index
    (``LINE_MAX_LEVELS``, the root included); deeper is a ValidationError `line_too_deep`."""
    if deepest + 1 > LINE_MAX_LEVELS:
        raise field_error("sponsor", f"The line would be too deep: a member may be at most {LINE_MAX_LEVELS - 1} "
                                     f"levels below the root (this one would be {deepest}). Choose a sponsor "
                                     "higher in the line.", code="line_too_deep")


def _member_place(user: User, parent: User) -> None:
    """The tree rule: a member's path is its sponsor's path and its own id; depth one more."""
    line_depth_check(parent.depth + 1)
    user.path = parent.path + path_encode(user.pk)
    user.depth = parent.depth + 1


def member_create(*, email: str, password: str | None = None, sponsor: User | None = None,
                  first_name: str = "", last_name: str = "", is_staff: bool = False,
                  is_superuser: bool = False, validate_password_strength: bool = False) -> User:
    """Register a member under `sponsor` (the system root when None)."""
    email = _member_email(email)
    first_name = text_clean(first_name, field="first_name")
    last_name = text_clean(last_name, field="last_name")
    if password and validate_password_strength:
        try:
            validate_password(password)
        except ValidationError as exc:
            raise ValidationError({"password": exc.error_list}, code="weak_password") from None
    with transaction.atomic():
        parent = sponsor if sponsor is not None else system_root()
        parent = User.objects.only("id", "path", "depth", "is_active").get(pk=parent.pk)
        line_depth_check(parent.depth + 1)  # before anything is written
        if User.objects.filter(email__iexact=email).exists():
            raise _email_taken("")
        user = User(email=email, first_name=first_name or "", last_name=last_name or "",
                    sponsor=parent, is_staff=is_staff, is_superuser=is_superuser)
        user.set_password(password) if password else user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise _email_taken("") from None
        _member_place(user, parent)
        User.objects.filter(pk=user.pk).update(path=user.path, depth=user.depth)
    return user


@dataclass(frozen=True)
class NewMember:
    """One member for `members_create_bulk`. `sponsor`: a `User`, None (the system root), or
    the e-mail of a member listed before it in the same call."""

    email: str
    sponsor: User | str | None = None
    first_name: str = ""
    last_name: str = ""


def members_create_bulk(*, members: Sequence[NewMember]) -> list[User]:
    """`member_create` for many members at once (no password: unusable), in a constant number
    of queries: the same e-mail rule and the same path/depth rule, in one transaction.

    A sponsor named by e-mail must come earlier in `members` (parents first). Refuses the
    whole call (ValidationError, nothing written) when an e-mail is invalid, taken, or
    listed twice, or a sponsor is unknown. Returns the members in the order given.
    """
    if not members:
        return []
    emails = [_member_email(m.email) for m in members]
    for m in members:
        text_clean(m.first_name, field="first_name")
        text_clean(m.last_name, field="last_name")
    if len(set(emails)) != len(emails):
        twice = sorted({e for e in emails if emails.count(e) > 1})
        raise field_error("email", f"An e-mail is listed twice: {', '.join(twice[:5])}.", code="duplicate_email")
    index = {email: i for i, email in enumerate(emails)}
    for i, m in enumerate(members):
        if isinstance(m.sponsor, str) and index.get(m.sponsor.strip().lower(), i) >= i:
            raise field_error("sponsor", f"The sponsor {m.sponsor!r} of {emails[i]} must be a member or "
                                         "listed before it.", code="unknown_sponsor")
    with transaction.atomic():
        root = system_root()
        known_ids = {root.pk} | {m.sponsor.pk for m in members if isinstance(m.sponsor, User)}
        parents = {u.pk: u for u in User.objects.filter(pk__in=known_ids).only("id", "path", "depth")}
        missing = known_ids - parents.keys()
        if missing:
            raise field_error("sponsor", f"Unknown sponsor(s): {sorted(missing)}.", code="unknown_sponsor")
        taken = list(User.objects.annotate(lower_email=Lower("email"))
                     .filter(lower_email__in=emails).values_list("lower_email", flat=True)[:5])
        if taken:
            raise _email_taken(", ".join(sorted(taken)))
        users = []
        for email, m in zip(emails, members, strict=True):
            # A sponsor listed in this call has no id yet: the root stands in until the tree
            # (sponsor, path, depth) is written below, in the same transaction.
            known = m.sponsor.pk if isinstance(m.sponsor, User) else root.pk
            user = User(email=email, first_name=m.first_name or "", last_name=m.last_name or "", sponsor_id=known)
            user.set_unusable_password()
            users.append(user)
        try:
            with transaction.atomic():
                User.objects.bulk_create(users)
        except IntegrityError:
            raise _email_taken("") from None
        for user, m in zip(users, members, strict=True):
            if isinstance(m.sponsor, str):
                parent = users[index[m.sponsor.strip().lower()]]
            else:
                parent = parents[m.sponsor.pk if m.sponsor is not None else root.pk]
            user.sponsor = parent
            _member_place(user, parent)
        _tree_write(users)
    return users


def _tree_write(users: Sequence[User]) -> None:
    """sponsor, path and depth of fresh members: one UPDATE … FROM (VALUES …) on PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        User.objects.bulk_update(users, ["sponsor", "path", "depth"], batch_size=500)
        return
    table = User._meta.db_table
    with connection.cursor() as cur:
        for i in range(0, len(users), 1000):
            batch = users[i:i + 1000]
            values = ", ".join(["(%s::bigint, %s::bigint, %s, %s::integer)"] * len(batch))
            params = [x for u in batch for x in (u.pk, u.sponsor_id, u.path, u.depth)]
            cur.execute(f"UPDATE {table} AS u SET sponsor_id = v.sponsor_id, path = v.path, depth = v.depth "
                        f"FROM (VALUES {values}) AS v(id, sponsor_id, path, depth) WHERE u.id = v.id", params)


def member_sponsor_change(*, user: User, sponsor: User) -> User:
    """Move `user` (with its whole subtree) under `sponsor`. Refuses cycles and the root.

    Volumes that depend on the tree must be recomputed afterwards (`rebuild_volumes`).
    """
    with transaction.atomic():
        user, sponsor = (User.objects.select_for_update().get(pk=user.pk),
                         User.objects.get(pk=sponsor.pk))
        if user.is_system_root:
            raise field_error("sponsor", "The system root has no sponsor.", code="system_root")
        if sponsor.path.startswith(user.path):
            raise field_error("sponsor", "That sponsor is in this member's own downline: "
                                         "the change would make a cycle.", code="sponsor_cycle")
        sponsor_changing.send(sender=User, user=user)  # e.g. mlm keeps the old paths for refunds
        old_prefix, new_prefix = user.path, sponsor.path + path_encode(user.pk)
        depth_delta = sponsor.depth + 1 - user.depth
        if depth_delta > 0:
            deepest = (User.objects.filter(path__startswith=old_prefix).aggregate(d=models.Max("depth"))["d"]
                       or user.depth)
            line_depth_check(deepest + depth_delta)
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


# A lost key race runs the batch again; every new attempt skips at least the key that lost.
_KEY_RACE_ATTEMPTS = 3


def _posting_check(p: Posting) -> None:
    """A posting's own shape, before any query: a known wallet, an amount that fits a money
    column, an idempotency key that fits the ledger's."""
    if p.wallet not in BALANCE_FIELD:
        raise field_error("wallet", f"Unknown wallet {p.wallet!r}.", code="unknown_wallet")
    amount = p.amount
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount == 0:
        raise field_error("amount", "A posting needs a non-zero finite Decimal amount.", code="invalid_amount")
    if abs(amount) > MONEY_MAX or amount != amount.quantize(MONEY_QUANTUM, rounding=ROUND_DOWN):
        raise field_error("amount", f"{amount} does not fit a money column (at most "
                                    f"{format_money(MONEY_MAX)}, {MONEY_DECIMAL_PLACES} decimal places).",
                          code="invalid_amount")
    key = p.idempotency_key
    if not isinstance(key, str) or not key or len(key) > LEDGER_KEY_MAX_LENGTH or "\x00" in key:
        raise field_error("idempotency_key", f"An idempotency key is 1 to {LEDGER_KEY_MAX_LENGTH} "
                                             "characters, without NUL.", code="invalid_idempotency_key")
    if p.allow_debt and (p.wallet != Wallet.PASSIVE or amount > 0):
        raise field_error("amount", "Only a passive debit can leave a clawback debt.", code="debt_not_allowed")


def wallet_post(postings: Sequence[Posting], *, savepoint: bool = True) -> list[LedgerEntry]:
    """Apply `postings` atomically. Returns the ledger rows created (already-present
    idempotency keys are skipped, so a retry creates nothing).

    Refuses (ValidationError, nothing written) a balance that would go below zero
    (`insufficient_funds`) or past what a money column holds (`balance_overflow`).
    A key committed by a concurrent transaction between the look-up and the INSERT
    (callers that lock different members, e.g. one deposit reference sent for two
    members) is the retry case: the batch runs again and skips it.

    Debt: a posting with `allow_debt` debits min(amount, balance) and adds the rest to
    `User.clawback_debt` (a `DebtEntry` with the posting's key; no ledger row when the
    balance is zero). A positive passive credit to a member in debt is followed by a
    `clawback` debit of min(credit, debt) (key `<key>:clawback`) and a repayment entry.

    Queries: one lock, one key look-up, one balance UPDATE, one ledger INSERT —
    whatever the number of postings and members; plus one debt-key look-up when a
    posting allows debt and one debt INSERT when a debt changes. `savepoint=False` (for a
    caller whose whole transaction must roll back on any error, and whose keys are new: the
    batch processing of purchases) saves the savepoint's two statements, the retry and the key
    look-up: its keys must be new (made from rows it has just inserted) — a key already in
    the ledger is then an IntegrityError, not a skip.
    """
    if not postings:
        return []
    for p in postings:
        _posting_check(p)
    keys = [p.idempotency_key for p in postings]
    if len(set(keys)) != len(keys):
        raise ValidationError("Duplicate idempotency keys in one posting batch.",
                              code="duplicate_idempotency_key")
    if not savepoint:
        with transaction.atomic(savepoint=False):
            return _post(postings, keys, keys_are_new=True)
    for attempt in range(1, _KEY_RACE_ATTEMPTS + 1):
        try:
            with transaction.atomic():  # a savepoint when nested: a lost race rolls back this batch only
                return _post(postings, keys)
        except IntegrityError:
            if attempt == _KEY_RACE_ATTEMPTS or not LedgerEntry.objects.filter(idempotency_key__in=keys).exists():
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _post(postings: Sequence[Posting], keys: list[str], *, keys_are_new: bool = False) -> list[LedgerEntry]:
    users = lock_rows(User, (p.user_id for p in postings), fields=_BALANCES)
    missing = {p.user_id for p in postings} - users.keys()
    if missing:
        raise ValidationError(f"Unknown member(s): {sorted(missing)}.", code="unknown_member")
    # Keys made from rows the caller has just inserted cannot be in the ledger yet: no look-up
    # (the unique index still refuses a duplicate, and the caller's transaction rolls back).
    done = set() if keys_are_new else set(
        LedgerEntry.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
    debt_keys = [p.idempotency_key for p in postings if p.allow_debt]
    if debt_keys:  # a debit the balance could not cover at all left only a debt entry
        done |= set(DebtEntry.objects.filter(idempotency_key__in=debt_keys).values_list("idempotency_key", flat=True))
    todo = [p for p in postings if p.idempotency_key not in done]
    if not todo:
        return []
    before = {uid: _balances(user) for uid, user in users.items()}
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
            raise field_error("amount", f"Insufficient {p.wallet} balance: {format_money(balance)} USD "
                                        f"available, {format_money(-amount)} USD needed.",
                              code="insufficient_funds", error_class=InsufficientFunds)
        if new_balance > MONEY_MAX:
            raise field_error(
                "amount", f"The {p.wallet} balance would exceed the largest amount a wallet holds "
                          f"({format_money(MONEY_MAX)} USD): {format_money(balance)} USD now, "
                          f"{format_money(amount)} USD more.", code="balance_overflow")
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
    # Only balances that moved: a credit and its debit (net zero, a bonus auto-purchase) write nothing.
    update_many(User, {uid: dict(zip(_BALANCES, _balances(users[uid]), strict=True))
                       for uid in {p.user_id for p in todo} if _balances(users[uid]) != before[uid]})
    if debts:
        insert_many(debts)
    return insert_many(rows)


_BALANCES = ("balance_active", "balance_passive", "clawback_debt")


def _balances(user: User) -> tuple[Decimal, ...]:
    return tuple(getattr(user, name) for name in _BALANCES)


def _deposit_key(reference: str) -> str:
    return f"deposit:{reference}"


def wallet_deposit(*, user: User, amount, reference: str, created_by: User | None = None,
                   description: str = "") -> LedgerEntry:
    """Credit the active wallet. The same `reference` twice credits once: the second
    call returns the first entry (and refuses a different member or amount)."""
    return wallet_deposit_with_status(user=user, amount=amount, reference=reference, created_by=created_by,
                                      description=description)[0]


def wallet_deposit_with_status(*, user: User, amount, reference: str, created_by: User | None = None,
                               description: str = "") -> tuple[LedgerEntry, bool]:
    """`wallet_deposit`, and whether this call credited (False: the reference's first entry).

    Decided under the member's row lock. The same reference for another member or another
    amount raises `IdempotencyConflict` (code `reference_conflict`).
    """
    amount = to_money(amount)
    reference = text_clean(reference, field="reference").strip()
    description = text_clean(description, field="description")
    if not reference:
        raise field_error("reference", "A deposit needs a reference.", code="required")
    if len(reference) > DEPOSIT_REFERENCE_MAX_LENGTH:
        raise field_error("reference", f"The reference is too long ({DEPOSIT_REFERENCE_MAX_LENGTH} characters "
                                       "at most).", code="max_length")
    key = _deposit_key(reference)
    with transaction.atomic():
        rows = wallet_post([Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=amount,
                                    reason=LedgerEntry.Reason.DEPOSIT, idempotency_key=key,
                                    description=description or f"Deposit {reference}",
                                    created_by_id=created_by.pk if created_by else None)])
        if rows:
            entry, created = rows[0], True
        else:
            entry, created = LedgerEntry.objects.get(idempotency_key=key), False
            if entry.user_id != user.pk:
                raise field_error("reference", f"Reference {reference!r} was already used for a deposit to "
                                               "another member.", code="reference_conflict",
                                  error_class=IdempotencyConflict)
            if entry.amount != amount:
                raise field_error("reference", f"Reference {reference!r} was already used for a deposit of "
                                               f"{format_money(entry.amount)} USD, not {format_money(amount)}.",
                                  code="reference_conflict", error_class=IdempotencyConflict)
        user.balance_active = User.objects.values_list("balance_active", flat=True).get(pk=user.pk)
    return entry, created


def wallet_credit(*, user: User, wallet: str, amount, reason: str, idempotency_key: str,
                  cause: models.Model | None = None, description: str = "") -> LedgerEntry | None:
    """Credit one wallet; returns the new entry, or None when the key was already posted."""
    rows = wallet_post([Posting(user_id=user.pk, wallet=wallet, amount=to_money(amount),
                                reason=reason, idempotency_key=idempotency_key, cause=cause,
                                description=description)])
    return rows[0] if rows else None


# --- transfers (money-lifecycle.md §4) ---------------------------------------------------------
#
# A client's idempotency key is kept inside the ledger's own keys (unique, 200 characters), after a
# prefix, the member's id (≤ 19 digits) and a suffix. The longest is
# "member_transfer:" (16) + 19 + ":" + key + ":bonus" (6) = 42 + key, so a client key of at most
# IDEMPOTENCY_KEY_MAX_LENGTH = 100 characters always fits the ledger's (LEDGER_KEY_MAX_LENGTH),
# with room to spare for longer prefixes.
IDEMPOTENCY_KEY_MAX_LENGTH = 100
TRANSFER_KEY_PREFIX = "transfer"
MEMBER_TRANSFER_KEY_PREFIX = "member_transfer"


def idempotency_key_clean(idempotency_key: str | None, *, field: str = "idempotency_key",
                          max_length: int = IDEMPOTENCY_KEY_MAX_LENGTH) -> str | None:
    """A client's idempotency key, stripped; None when absent or blank. The one home of this rule.

    Refuses (code `invalid_idempotency_key`) a key longer than `max_length` (by default
    IDEMPOTENCY_KEY_MAX_LENGTH, which fits inside the ledger's own keys; a key stored as it is, like
    a purchase's, may use its column's length) or with characters other than printable ASCII
    (what an HTTP header carries safely; no NUL, no control characters).
    """
    if idempotency_key is None:
        return None
    key = str(idempotency_key).strip()
    if not key:
        return None
    if len(key) > max_length:
        raise field_error(field, f"The idempotency key is too long: {len(key)} characters, "
                                 f"{max_length} at most.", code="invalid_idempotency_key")
    if not (key.isascii() and key.isprintable()):
        raise field_error(field, "The idempotency key may contain printable ASCII characters only.",
                      code="invalid_idempotency_key")
    return key


def _sync_balances(user: User, locked: User) -> None:
    """Give the caller's instance the balances just written (no query)."""
    user.balance_active, user.balance_passive = locked.balance_active, locked.balance_passive


def wallet_transfer_to_active_with_status(*, user: User, amount, idempotency_key: str | None = None
                                          ) -> tuple[list[LedgerEntry], bool]:
    """`wallet_transfer_to_active`, also saying whether this call made the transfer (False: a
    retry with the same key, which returns the first call's rows). Decided under the member's
    row lock, so concurrent retries make one transfer and exactly one of them says True."""
    amount = to_money(amount)
    key = idempotency_key_clean(idempotency_key)
    base = f"{TRANSFER_KEY_PREFIX}:{user.pk}:{key or uuid.uuid4().hex}"
    keys = {"out": f"{base}:out", "in": f"{base}:in", "bonus": f"{base}:bonus"}
    with transaction.atomic():
        locked = lock_rows(User, [user.pk]).get(user.pk)
        if locked is None:
            raise field_error("user", "Unknown member.", code="unknown_member")
        if key is not None:
            existing = list(LedgerEntry.objects.filter(idempotency_key__in=keys.values()).order_by("id"))
            if existing:
                out = next(e for e in existing if e.idempotency_key == keys["out"])
                if -out.amount != amount:
                    raise field_error("idempotency_key", f"This idempotency key was used for a transfer of "
                                                     f"{-out.amount:,.2f} USD, not {amount:,.2f} USD.",
                                  code="idempotency_conflict", error_class=IdempotencyConflict)
                return existing, False
        rate = WalletSettings.load().transfer_bonus_rate
        bonus = round_money(amount * rate)
        postings = [
            Posting(user_id=user.pk, wallet=Wallet.PASSIVE, amount=-amount,
                    reason=LedgerEntry.Reason.TRANSFER, idempotency_key=keys["out"],
                    description="Transfer to active wallet"),
            Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=amount,
                    reason=LedgerEntry.Reason.TRANSFER, idempotency_key=keys["in"],
                    description="Transfer from passive wallet"),
        ]
        if bonus > 0:
            postings.append(Posting(user_id=user.pk, wallet=Wallet.ACTIVE, amount=bonus,
                                    reason=LedgerEntry.Reason.TRANSFER_BONUS, idempotency_key=keys["bonus"],
                                    description=f"Transfer bonus {rate * 100:g}% of {amount:,.2f} USD"))
        rows = wallet_post(postings)
        _sync_balances(user, User.objects.get(pk=user.pk))
    return rows, True


def wallet_transfer_to_active(*, user: User, amount, idempotency_key: str | None = None) -> list[LedgerEntry]:
    """Move `amount` from the member's passive wallet to its active wallet, with the transfer
    bonus (`WalletSettings.transfer_bonus_rate` × amount, rounded to cents) credited to the
    active wallet as its own `transfer_bonus` row; no bonus row when it rounds to zero (rate 0).

    One transaction. The same `idempotency_key` returns the first call's rows and moves nothing;
    with a different amount it raises `IdempotencyConflict` (→ 422). Returns the ledger rows
    (passive debit, active credit, bonus credit).
    """
    rows, _ = wallet_transfer_to_active_with_status(user=user, amount=amount, idempotency_key=idempotency_key)
    return rows


def wallet_transfer_to_member_with_status(*, sender: User, receiver: User, amount, wallet: str = Wallet.ACTIVE,
                                          idempotency_key: str | None = None, created_by: User | None = None
                                          ) -> tuple[list[LedgerEntry], bool]:
    """`wallet_transfer_to_member`, also saying whether this call made the transfer (decided
    under both members' row locks)."""
    amount = to_money(amount)
    if wallet not in BALANCE_FIELD:
        raise field_error("wallet", f"Unknown wallet {wallet!r}: choose active or passive.", code="invalid_wallet")
    key = idempotency_key_clean(idempotency_key)
    if receiver.pk == sender.pk:
        raise field_error("receiver", "You cannot transfer to yourself.", code="self_transfer")
    base = f"{MEMBER_TRANSFER_KEY_PREFIX}:{sender.pk}:{key or uuid.uuid4().hex}"
    keys = {"out": f"{base}:out", "in": f"{base}:in"}
    with transaction.atomic():
        users = lock_rows(User, [sender.pk, receiver.pk])
        if sender.pk not in users or receiver.pk not in users:
            raise field_error("receiver", "Unknown member.", code="unknown_member")
        target = users[receiver.pk]
        if key is not None:
            existing = {e.idempotency_key: e for e in LedgerEntry.objects.filter(idempotency_key__in=keys.values())}
            if existing:
                out, into = existing[keys["out"]], existing[keys["in"]]
                if (-out.amount, out.wallet, into.user_id) != (amount, wallet, receiver.pk):
                    raise field_error("idempotency_key", f"This idempotency key was used for a transfer of "
                                                     f"{-out.amount:,.2f} USD from the {out.wallet} wallet; this "
                                                     "one has another receiver, amount or wallet.",
                                  code="idempotency_conflict", error_class=IdempotencyConflict)
                return [out, into], False
        if target.is_system_root:
            raise field_error("receiver", "Transfers to the system root are not allowed.", code="root_receiver")
        if not target.is_active:
            raise field_error("receiver", "That member's account is disabled.", code="inactive_receiver")
        created_by_id = created_by.pk if created_by else None
        rows = wallet_post([
            Posting(user_id=sender.pk, wallet=wallet, amount=-amount, reason=LedgerEntry.Reason.MEMBER_TRANSFER,
                    idempotency_key=keys["out"], description=f"Transfer to {target.email}",
                    created_by_id=created_by_id),
            Posting(user_id=receiver.pk, wallet=Wallet.ACTIVE, amount=amount,
                    reason=LedgerEntry.Reason.MEMBER_TRANSFER, idempotency_key=keys["in"],
                    description=f"Transfer from {users[sender.pk].email}", created_by_id=created_by_id),
        ])
        fresh = User.objects.in_bulk([sender.pk, receiver.pk])
        _sync_balances(sender, fresh[sender.pk])
        _sync_balances(receiver, fresh[receiver.pk])
    return rows, True


def wallet_transfer_to_member(*, sender: User, receiver: User, amount, wallet: str = Wallet.ACTIVE,
                              idempotency_key: str | None = None) -> list[LedgerEntry]:
    """Move `amount` from the sender's `wallet` (`active` or `passive`) to the receiver's active
    wallet (reason `member_transfer`, no bonus). Refused to oneself (`self_transfer`), to the
    system root (`root_receiver`), to a disabled member and above the balance
    (`insufficient_funds`). One transaction; the same `idempotency_key` (per sender) returns the
    first call's rows [sender's debit, receiver's credit]; with another receiver, amount or
    wallet it raises `IdempotencyConflict` (→ 422).
    """
    rows, _ = wallet_transfer_to_member_with_status(sender=sender, receiver=receiver, amount=amount,
                                                    wallet=wallet, idempotency_key=idempotency_key)
    return rows


# --- withdrawals: they live in the `withdrawals` app, which imports accounts -------------------
# Re-exported here (the README's Python API: "importable from accounts.services") lazily, so importing
# accounts never imports withdrawals (no cycle): `from accounts.services import withdrawal_request`.
_LAZY_EXPORTS = {name: "withdrawals.services" for name in (
    "withdrawal_request", "withdrawal_approve", "withdrawal_mark_paid", "withdrawal_reject", "withdrawal_cancel")}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
