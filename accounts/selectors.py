"""Reads of the accounts app."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import DebtEntry, LedgerEntry, User, Wallet
from common.money import ZERO, MoneySum


def system_root() -> User:
    """The company's own member account, at the top of the tree."""
    return User.objects.get(is_system_root=True)


def upline(*, user: User) -> list[User]:
    """Sponsor, sponsor's sponsor, … up to (not including) the root. One query, any depth."""
    ids = user.upline_ids
    if not ids:
        return []
    by_id = User.objects.in_bulk(ids)
    return [by_id[i] for i in ids]


def downline(*, user: User, max_depth: int | None = None) -> QuerySet[User]:
    """Everyone below `user` (not `user`), optionally to `max_depth` levels. One query."""
    qs = User.objects.filter(path__startswith=user.path).exclude(pk=user.pk)
    if max_depth is not None:
        qs = qs.filter(depth__lte=user.depth + max_depth)
    return qs.order_by("path")


def user_by_referral_code(code: str) -> User | None:
    return User.objects.filter(referral_code=code.strip().upper(), is_active=True).first()


def ledger_for(*, user: User, wallet: str | None = None) -> QuerySet[LedgerEntry]:
    qs = LedgerEntry.objects.filter(user=user)
    if wallet:
        qs = qs.filter(wallet=wallet)
    return qs.order_by("-created_at", "-id")


def ledger_mismatches() -> list[dict]:
    """Members whose cached balance differs from the sum of their ledger rows.

    Two aggregate queries for the whole table, compared in one pass.
    """
    sums: dict[tuple[int, str], object] = {
        (row["user_id"], row["wallet"]): row["total"]
        for row in LedgerEntry.objects.values("user_id", "wallet").annotate(total=MoneySum("amount"))
    }
    problems = []
    for user in User.objects.only("id", "email", "balance_active", "balance_passive").iterator():
        for wallet, cached in ((Wallet.ACTIVE, user.balance_active), (Wallet.PASSIVE, user.balance_passive)):
            total = sums.get((user.id, wallet.value)) or 0
            if cached != total:
                problems.append({"user_id": user.id, "email": user.email, "wallet": wallet.value,
                                 "cached": cached, "ledger": total})
    return problems



def wallet_balance_problems() -> list[str]:
    """`ledger_mismatches()` as check_ledger lines (the registered check `wallet_balances`)."""
    return [f"member {p['user_id']} ({p['email']}) {p['wallet']}: cached {p['cached']} != ledger {p['ledger']}"
            for p in ledger_mismatches()]


def member_by_email_or_referral_code(*, email: str | None = None, referral_code: str | None = None) -> User | None:
    """The member named by e-mail (case-insensitive) or by referral code; None when unknown.

    The system root and disabled members are returned too: the transfer service refuses them
    with its own message and code.
    """
    if email:
        return User.objects.filter(email__iexact=email.strip()).first()
    if referral_code:
        return User.objects.filter(referral_code=referral_code.strip().upper()).first()
    return None
def clawback_debt(*, user: User) -> Decimal:
    """What a refund's clawback could not take from the member's passive wallet and later
    passive credits will repay first (money-lifecycle §2). Read from the database."""
    return User.objects.filter(pk=user.pk).values_list("clawback_debt", flat=True).first() or ZERO


def debt_problems() -> list[str]:
    """`debt_mismatches()` as check_ledger lines (the registered check `clawback_debts`)."""
    return [f"member {p['user_id']} ({p['email']}) clawback debt: cached {p['cached']} != entries {p['entries']}"
            for p in debt_mismatches()]


def debt_mismatches() -> list[dict]:
    """Members whose `clawback_debt` differs from the sum of their debt entries. Two queries."""
    sums = {row["user_id"]: row["total"]
            for row in DebtEntry.objects.values("user_id").annotate(total=MoneySum("amount"))}
    cached = {uid: (email, debt) for uid, email, debt in
              User.objects.filter(clawback_debt__gt=0).values_list("id", "email", "clawback_debt")}
    problems = []
    for uid in sorted(cached.keys() | {uid for uid, total in sums.items() if total}):
        email, debt = cached.get(uid, ("", ZERO))
        total = sums.get(uid) or ZERO
        if debt != total:
            problems.append({"user_id": uid, "email": email, "cached": debt, "entries": total})
    emails = dict(User.objects.filter(pk__in=[p["user_id"] for p in problems if not p["email"]])
                  .values_list("id", "email")) if problems else {}
    for p in problems:
        p["email"] = p["email"] or emails.get(p["user_id"], "")
    return problems
