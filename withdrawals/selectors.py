"""Reads of the withdrawals app: members' requests, the operators' queue, the reserve check."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, QuerySet

from accounts.models import LedgerEntry, User
from common.money import MoneySum
from withdrawals.models import Withdrawal


def withdrawals_for(*, user: User, status: str | None = None) -> QuerySet[Withdrawal]:
    """A member's requests, newest first."""
    qs = Withdrawal.objects.filter(user_id=user.pk)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def withdrawal_queue(*, status: str | None = None, method: str | None = None) -> QuerySet[Withdrawal]:
    """Every request (operators), oldest first: the order they are worked in."""
    qs = Withdrawal.objects.select_related("user")
    if status:
        qs = qs.filter(status=status)
    if method:
        qs = qs.filter(method=method)
    return qs.order_by("created_at", "id")


def withdrawal_reserve_mismatches() -> list[dict]:
    """Withdrawals whose ledger rows disagree with their status (money-lifecycle §5):

    - every withdrawal: exactly one `withdrawal` debit of −amount, on its member's passive wallet;
    - requested / approved / paid: no `withdrawal_return` row;
    - rejected / cancelled: exactly one `withdrawal_return` credit of +amount.

    Also `withdrawal` / `withdrawal_return` ledger rows that point at no withdrawal.
    Two aggregate queries and one pass over the withdrawals, whatever their number.
    """
    content_type = ContentType.objects.get_for_model(Withdrawal)
    legs: dict[tuple[str, str], dict] = {}
    orphans = []
    rows = (LedgerEntry.objects
            .filter(reason__in=[LedgerEntry.Reason.WITHDRAWAL, LedgerEntry.Reason.WITHDRAWAL_RETURN])
            .values("cause_type_id", "cause_id", "reason", "user_id", "wallet")
            .annotate(n=Count("id"), total=MoneySum("amount")))
    for row in rows:
        if row["cause_type_id"] != content_type.pk:
            orphans.append(row)
            continue
        key = (row["cause_id"], row["reason"])
        leg = legs.setdefault(key, {"n": 0, "total": 0, "owners": set()})
        leg["n"] += row["n"]
        leg["total"] += row["total"]
        leg["owners"].add((row["user_id"], row["wallet"]))

    problems = []
    seen: set[str] = set()
    for w in Withdrawal.objects.only("id", "user_id", "amount", "status").order_by("id").iterator():
        wid = str(w.pk)
        seen.add(wid)
        owner = {(w.user_id, "passive")}
        reserve = legs.get((wid, LedgerEntry.Reason.WITHDRAWAL))
        back = legs.get((wid, LedgerEntry.Reason.WITHDRAWAL_RETURN))
        expected_back = w.status in Withdrawal.RETURNED
        issue = None
        if reserve is None or reserve["n"] != 1 or reserve["total"] != -w.amount or reserve["owners"] != owner:
            issue = "the reserve is not exactly one passive debit of the amount"
        elif expected_back and (back is None or back["n"] != 1 or back["total"] != w.amount
                                or back["owners"] != owner):
            issue = "the amount was not credited back exactly once"
        elif not expected_back and back is not None:
            issue = "the amount was credited back, yet the reserve should be held or paid"
        if issue:
            problems.append({"withdrawal_id": w.pk, "user_id": w.user_id, "status": w.status, "amount": w.amount,
                             "reserved": reserve["total"] if reserve else 0,
                             "returned": back["total"] if back else 0, "problem": issue})
    by_orphan: dict[str, list] = defaultdict(list)
    for row in orphans:
        by_orphan[row["reason"]].append(row)
    for (cause_id, reason), leg in legs.items():
        if cause_id not in seen:
            by_orphan[reason].append({"cause_id": cause_id, "total": leg["total"]})
    for reason, rows_ in by_orphan.items():
        for row in rows_:
            problems.append({"withdrawal_id": row.get("cause_id") or None, "user_id": row.get("user_id"),
                             "status": None, "amount": None, "reserved": None, "returned": None,
                             "problem": f"a {reason} ledger row ({row['total']}) points at no withdrawal"})
    return problems


def withdrawal_reserve_problems() -> list[str]:
    """`withdrawal_reserve_mismatches()` as check_ledger lines (registered in the AppConfig)."""
    lines = []
    for p in withdrawal_reserve_mismatches():
        if p["status"] is None:
            lines.append(f"withdrawal {p['withdrawal_id'] or '?'}: {p['problem']}")
        else:
            lines.append(f"withdrawal #{p['withdrawal_id']} (member {p['user_id']}, {p['status']}, amount "
                         f"{p['amount']}): {p['problem']} — reserved {p['reserved']}, returned {p['returned']}")
    return lines
