"""Reads of the mlm app: the plan (ranks, tiers, settings), summaries, bonuses, the team,
what a payout run would pay, and the bonus statuses checked against the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import DebtEntry, LedgerEntry, User, path_decode
from common.errors import field_error
from common.money import ZERO, MoneySum, to_money
from mlm import rules
from mlm.models import (
    Bonus,
    InvestmentTier,
    MemberStats,
    MonthlyVolume,
    Notification,
    PayoutRun,
    PlanSettings,
    ProcessedPurchase,
    ProcessedRefund,
    Rank,
    month_next,
    month_start,
)
from mlm.rules import PlanRules, RankRule
from purchases.models import Option, Purchase
from purchases.services import MAX_PACKS

TEAM_MAX_DEPTH = 10
TEAM_MAX_ROWS = 1000


@dataclass
class Plan:
    """The operator-editable plan: its rows (names, foreign keys, the admin) and the same plan as
    plain data for the rules (`rules`, `mlm.rules.PlanRules`). Every question of the plan — who
    is active, the cap, the next rank, the tier rate — is answered by `rules`; the methods here
    only map its answers back to the rows."""

    settings: PlanSettings
    ranks: list[Rank]
    tiers: list[InvestmentTier]
    rules: PlanRules = field(init=False)
    by_id: dict[int, Rank] = field(init=False)

    def __post_init__(self):
        if not self.ranks:
            raise RuntimeError("The plan has no ranks: run the migrations (mlm 0002) or add ranks in the admin.")
        self.by_id = {r.pk: r for r in self.ranks}
        s = self.settings
        self.rules = PlanRules(
            ranks=tuple(RankRule(r.pk, r.code, r.rate, r.pv_required, r.tv_required, r.partners_required,
                                 r.position) for r in self.ranks),
            tiers=tuple((t.threshold, t.rate) for t in self.tiers),
            active_min_pv=s.active_min_pv, pioneer_threshold=s.pioneer_threshold, pioneer_limit=s.pioneer_limit,
            pioneer_rate=s.pioneer_rate, referral_rate=s.referral_rate, referral_threshold=s.referral_threshold,
            branch_cap=s.branch_cap, max_levels=s.max_levels, pool_rate=s.pool_rate, grace_day=s.grace_day,
            grace_day_rate=s.grace_day_rate, loyalty_months=s.loyalty_months)

    @property
    def lowest(self) -> Rank:
        return self.by_id[self.rules.lowest.id]

    @property
    def top(self) -> Rank:
        return self.by_id[self.rules.top.id]

    def rank(self, rank_id: int | None) -> Rank:
        """A member's rank row; none stored means the lowest."""
        return self.by_id[self.rules.rank(rank_id).id]

    def rank_rule(self, rank: Rank) -> RankRule:
        return self.rules.rank(rank.pk)

    def next_rank(self, rank: Rank) -> Rank | None:
        nxt = self.rules.next_rank(self.rank_rule(rank))
        return self.by_id[nxt.id] if nxt else None


_plan_cache: dict = {}


def plan_load() -> Plan:
    """The plan: one query for the settings row; the ranks and tiers are read again only when
    `plan_version` moved (a rank or tier was saved or deleted: `mlm.receivers`)."""
    settings = PlanSettings.load()
    cached = _plan_cache.get("plan")
    key = (settings.pk, settings.plan_version, settings.updated_at)  # a re-seeded row has a new time
    if cached is None or cached[0] != key:
        cached = (key, list(Rank.objects.order_by("position")),
                  list(InvestmentTier.objects.order_by("threshold")))
        _plan_cache["plan"] = cached
    return Plan(settings=settings, ranks=cached[1], tiers=cached[2])


def plan_cache_clear() -> None:
    _plan_cache.clear()


def active_member_ids(plan: Plan, *, month: date, user_ids: Iterable[int] | None = None) -> set[int]:
    """The members (among `user_ids`; everyone when None) active in `month` (§3), as
    `PlanRules.is_active` decides on their monthly PV. The root is never active (§1). One query."""
    qs = MonthlyVolume.objects.filter(month=month_start(month)).exclude(user__is_system_root=True)
    if user_ids is not None:
        qs = qs.filter(user_id__in=list(user_ids))
    return {uid for uid, pv in qs.values_list("user_id", "pv") if plan.rules.is_active(pv)}


def monthly_pv(*, user: User, month: date | None = None) -> Decimal:
    month = month_start(month or timezone.now())
    return (MonthlyVolume.objects.filter(user=user, month=month).values_list("pv", flat=True).first()
            or ZERO)


def grace_day_months(plan: Plan, *, user_ids: Iterable[int] | None = None,
                     since: date | None = None) -> dict[int, set[date]]:
    """Per member, the months with a counted, unrefunded purchase dated (UTC) on the Grace Day
    (§8a) — what `rules.loyalty_streak` counts. For `user_ids` (everyone when None); with
    `since`, only the members with such a purchase since that date (only they can have a
    streak), each with all its months. One query: the database narrows the rows by the day of
    the month, `rules.is_grace_day` decides."""
    qs = Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True,
                                 created_at__day=plan.rules.grace_day)  # TIME_ZONE is UTC
    if user_ids is not None:
        qs = qs.filter(user_id__in=list(user_ids))
    if since is not None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        qs = qs.filter(user_id__in=qs.filter(created_at__gte=start).values("user_id"))
    months: dict[int, set[date]] = {}
    for uid, created_at in qs.values_list("user_id", "created_at").order_by():
        if rules.is_grace_day(plan.rules, created_at):
            months.setdefault(uid, set()).add(month_start(created_at))
    return months


def loyalty(plan: Plan, *, user: User, today: date | None = None) -> tuple[int, bool]:
    """(loyalty streak, loyalty-qualified) of a member today (§8a, `rules.loyalty_streak`)."""
    months = grace_day_months(plan, user_ids=[user.pk]).get(user.pk, set())
    streak = rules.loyalty_streak(plan.rules, months, today=today or timezone.now().date())
    return streak, rules.is_loyalty_qualified(plan.rules, streak)


def member_summary(*, user: User) -> dict:
    """rank (code), is_active, is_pioneer, pv, monthly_pv, fv, tv, max_branch, cap, next_rank (code and
    next_rank_name), gap,
    `loyalty_streak` and `is_loyalty_qualified` (§8a, from the purchases as they are now), the
    member's cash bonuses by status (`bonuses_pending`, `bonuses_paid`, `bonuses_reversed`) and its
    `clawback_debt`."""
    plan = plan_load()
    stats = MemberStats.objects.filter(user_id=user.pk).first()
    if stats is None:
        stats = MemberStats(user_id=user.pk, rank=plan.lowest)
    rank = plan.rank(stats.rank_id)
    month_pv = monthly_pv(user=user)
    streak, loyal = loyalty(plan, user=user)
    next_rank = plan.next_rank(rank)
    if stats.tv_updated_at is None:  # never recalculated: no team volume yet, the gap is the whole requirement
        empty = rules.team_volume(plan.rules, plan.rank_rule(rank), [])
        gap, cap = empty.gap, empty.cap
    else:
        gap, cap = stats.gap, stats.cap
    return {
        "rank": rank.code, "rank_name": rank.name, "rate": rank.rate,
        "is_active": plan.rules.is_active(month_pv) and not user.is_system_root,
        "is_pioneer": stats.is_pioneer,
        "pv": stats.pv, "monthly_pv": month_pv, "fv": stats.fv, "tv": stats.tv,
        "max_branch": stats.max_branch, "cap": cap,
        "next_rank": next_rank.code if next_rank else None,
        "next_rank_name": next_rank.name if next_rank else None,
        "gap": gap,
        "gap_pv": max(ZERO, next_rank.pv_required - stats.pv) if next_rank else ZERO,
        "partners_required": next_rank.partners_required if next_rank else 0,
        "loyalty_streak": streak, "is_loyalty_qualified": loyal,
        **bonus_status_totals(user=user),
        "clawback_debt": User.objects.filter(pk=user.pk).values_list("clawback_debt", flat=True).first() or ZERO,
    }


def bonus_status_totals(*, user: User) -> dict[str, Decimal]:
    """The member's cash bonuses (the passive-wallet kinds) summed by status: `bonuses_pending`
    (held for the payout run), `bonuses_paid` (credited), `bonuses_reversed` (credited, then taken
    back by a refund). Option bonuses are granted in options, not cash: they are not in these
    sums (the bonus list shows them). One query."""
    sums = dict(Bonus.objects.filter(user_id=user.pk, kind__in=Bonus.PASSIVE_KINDS)
                .values_list("status").annotate(total=Sum("amount")).order_by())
    return {f"bonuses_{status}": sums.get(status) or ZERO
            for status in (Bonus.Status.PENDING, Bonus.Status.PAID, Bonus.Status.REVERSED)}


def bonuses_for(*, user: User, kind: str | None = None, month: date | None = None,
                status: str | None = None) -> QuerySet[Bonus]:
    qs = Bonus.objects.filter(user=user).select_related("purchase", "purchase__user")
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    if month:
        start = month_start(month)
        qs = qs.filter(created_at__date__gte=start, created_at__date__lt=month_next(start))
    return qs.order_by("-created_at", "-id")


def direct_referrals(*, user: User) -> list[dict]:
    """Direct referrals with their branch volume (PV + FV of the referral). Two queries."""
    plan = plan_load()
    refs = list(User.objects.filter(sponsor=user).order_by("id")
                .values("id", "email", "first_name", "last_name", "date_joined"))
    stats = {s.user_id: s for s in MemberStats.objects.filter(user_id__in=[r["id"] for r in refs])}
    active = active_member_ids(plan, month=timezone.now(), user_ids=[r["id"] for r in refs])
    out = []
    for r in refs:
        s = stats.get(r["id"])
        pv, fv = (s.pv, s.fv) if s else (ZERO, ZERO)
        out.append({**r, "rank": plan.rank(s.rank_id if s else None).code, "pv": pv, "fv": fv,
                    "branch_volume": pv + fv, "is_active": r["id"] in active})
    return out


# --- refunds: what a refund takes back, and the ledger check of bonus statuses -----------------

def fv_upline_ids(processed: ProcessedPurchase, purchase: Purchase) -> list[int]:
    """The members whose FV a processed purchase raised: the buyer's upline when it was
    processed (sponsor first, root excluded). A purchase processed before the path was kept
    falls back to the buyer's path now."""
    ids = path_decode(processed.fv_path or purchase.user.path)
    return list(reversed(ids[1:-1]))


def refund_preview(*, purchase: Purchase) -> dict:
    """mlm's part of what a refund of `purchase` takes back, from whom; writes nothing.

    `purchases.selectors.refund_preview` collects it (the `purchase_refund_preview` signal).
    Keys: `mlm_processed` (False: refunded before processing, nothing to take back),
    `clawback_done`; `volumes` (buyer's PV and monthly PV, FV of the members on the path kept
    at processing); `bonuses` (per bonus: recipient, kind, status, amount and the action:
    `cancel` a pending one, `reverse` a paid cash one — `debit` from the passive balance now
    and the rest as `debt` —, `revoke` a paid options bonus with its auto-purchase, `none`
    when already taken back); `pioneer` (the status this purchase granted: `withdraw`, or
    `keep` when another counted purchase qualifies). A handful of queries.
    """
    processed = ProcessedPurchase.objects.filter(pk=purchase.pk).first()
    marker = ProcessedRefund.objects.filter(refund__purchase_id=purchase.pk).first()
    was_processed = processed is not None and (marker is None or marker.was_processed)
    out = {"mlm_processed": was_processed, "clawback_done": marker is not None,
           "volumes": [], "bonuses": [], "pioneer": None}
    if not was_processed:
        return out
    price = purchase.price
    upline_ids = fv_upline_ids(processed, purchase)
    bonuses = list(Bonus.objects.filter(purchase_id=purchase.pk).order_by("pk"))
    users = {u["id"]: u for u in User.objects.filter(pk__in={purchase.user_id, *upline_ids,
                                                              *(b.user_id for b in bonuses)})
             .values("id", "email", "balance_passive", "clawback_debt")}
    email = {uid: u["email"] for uid, u in users.items()}
    out["volumes"] = [
        {"user_id": purchase.user_id, "email": email.get(purchase.user_id, ""), "volume": "pv", "month": None,
         "amount": price},
        {"user_id": purchase.user_id, "email": email.get(purchase.user_id, ""), "volume": "monthly_pv",
         "month": month_start(purchase.created_at), "amount": price},
        *({"user_id": uid, "email": email.get(uid, ""), "volume": "fv", "month": None, "amount": price}
          for uid in upline_ids),
    ]
    passive = {uid: u["balance_passive"] for uid, u in users.items()}
    for b in bonuses:
        row = {"bonus_id": b.pk, "user_id": b.user_id, "email": email.get(b.user_id, ""), "kind": b.kind,
               "status": b.status, "amount": b.amount, "action": "none", "debit": ZERO, "debt": ZERO,
               "granted_purchase_id": b.granted_purchase_id}
        if b.status == Bonus.Status.PENDING:
            row["action"] = "cancel"
        elif b.status == Bonus.Status.PAID and b.kind in Bonus.PASSIVE_KINDS:
            debit = min(passive[b.user_id], b.amount)
            passive[b.user_id] -= debit
            row.update(action="reverse", debit=debit, debt=b.amount - debit)
        elif b.status == Bonus.Status.PAID:
            row["action"] = "revoke"
        out["bonuses"].append(row)
    stats = MemberStats.objects.filter(user_id=purchase.user_id, is_pioneer=True, pioneer_purchase_id=purchase.pk)
    if marker is None and stats.exists():
        other = (Purchase.objects.filter(user_id=purchase.user_id, kind__in=Purchase.COUNTED_KINDS,
                                         refunded_at__isnull=True, price__gte=PlanSettings.load().pioneer_threshold)
                 .exclude(pk=purchase.pk).order_by("id").values_list("id", flat=True).first())
        out["pioneer"] = {"user_id": purchase.user_id, "email": email.get(purchase.user_id, ""),
                          "action": "keep" if other else "withdraw", "other_purchase_id": other}
    return out


def bonus_status_problems() -> list[str]:
    """`bonus_ledger_mismatches` as the lines `check_ledger` prints (registered in MlmConfig)."""
    return [f"bonus {b['bonus_id']} ({b['kind']}, {b['status']}, {b['amount']}) of member {b['user_id']}: "
            f"{b['problem']}" for b in bonus_ledger_mismatches()]


def bonus_ledger_mismatches() -> list[dict]:
    """Bonuses whose status disagrees with their ledger rows (money-lifecycle §5).

    Cash bonuses (matched to ledger rows by cause = the bonus, whatever the key): `paid` and
    `reversed` ones have passive credits (reason `bonus`) equal to their amount; `reversed`
    ones also reversal debits (`bonus_reversal`) plus the clawback debt they left equal to
    their amount; `pending` and `cancelled` ones have no credit. A `reversed` options bonus has
    its auto-purchase refunded. Four aggregate queries and one pass over the bonuses.
    """
    ct = ContentType.objects.get_for_model(Bonus)
    by_cause = LedgerEntry.objects.filter(cause_type=ct).values("cause_id")
    credits, credit_rows = {}, {}
    for r in by_cause.filter(reason=LedgerEntry.Reason.BONUS).annotate(total=MoneySum("amount"), n=Count("id")):
        credits[r["cause_id"]], credit_rows[r["cause_id"]] = r["total"], r["n"]
    debits = {r["cause_id"]: -r["total"] for r in
              by_cause.filter(reason=LedgerEntry.Reason.BONUS_REVERSAL).annotate(total=MoneySum("amount"))}
    debts = {r["cause_id"]: r["total"] for r in
             DebtEntry.objects.filter(cause_type=ct, reason=DebtEntry.Reason.CLAWBACK).values("cause_id")
             .annotate(total=MoneySum("amount"))}
    problems = []
    rows = (Bonus.objects.filter(kind__in=Bonus.PASSIVE_KINDS)
            .values_list("id", "user_id", "kind", "status", "amount").order_by("id"))
    for pk, user_id, kind, status, amount in rows.iterator():
        key = str(pk)
        credited = credits.get(key) or ZERO
        taken = (debits.get(key) or ZERO) + (debts.get(key) or ZERO)
        problem = None
        if status in (Bonus.Status.PAID, Bonus.Status.REVERSED) and credited != amount:
            problem = f"{status} but credited {credited}"
        elif status in (Bonus.Status.PAID, Bonus.Status.REVERSED) and credit_rows.get(key, 0) != 1:
            problem = f"{status} but credited in {credit_rows.get(key, 0)} rows (one expected)"
        elif status in (Bonus.Status.PENDING, Bonus.Status.CANCELLED) and credited:
            problem = f"{status} but credited {credited}"
        elif status == Bonus.Status.REVERSED and taken != amount:
            problem = f"reversed but taken back {taken}"
        elif status != Bonus.Status.REVERSED and taken:
            problem = f"{status} but taken back {taken}"
        if problem:
            problems.append({"bonus_id": pk, "user_id": user_id, "kind": kind, "status": status,
                             "amount": amount, "problem": problem})
    for pk, user_id, kind, status, amount in (
            Bonus.objects.filter(status=Bonus.Status.REVERSED, granted_purchase__isnull=False,
                                 granted_purchase__refunded_at__isnull=True)
            .values_list("id", "user_id", "kind", "status", "amount")):
        problems.append({"bonus_id": pk, "user_id": user_id, "kind": kind, "status": status, "amount": amount,
                         "problem": "reversed but its auto-purchase still counts"})
    return problems


def team_downline(*, user: User, depth: int = 1) -> tuple[list[dict], bool]:
    """The downline to `depth` levels (capped at TEAM_MAX_DEPTH levels and TEAM_MAX_ROWS rows).
    Returns (rows, truncated)."""
    depth = max(1, min(depth, TEAM_MAX_DEPTH))
    plan = plan_load()
    qs = (User.objects.filter(path__startswith=user.path, depth__gt=user.depth, depth__lte=user.depth + depth)
          .order_by("path").values("id", "email", "sponsor_id", "depth"))
    rows = list(qs[:TEAM_MAX_ROWS + 1])
    truncated = len(rows) > TEAM_MAX_ROWS
    rows = rows[:TEAM_MAX_ROWS]
    stats = {s.user_id: s for s in MemberStats.objects.filter(user_id__in=[r["id"] for r in rows])}
    for r in rows:
        s = stats.get(r["id"])
        r["level"] = r.pop("depth") - user.depth
        r["rank"] = plan.rank(s.rank_id if s else None).code
        r["pv"] = s.pv if s else ZERO
        r["branch_volume"] = (s.pv + s.fv) if s else ZERO
    return rows, truncated


def notifications_for(*, user: User, unread: bool | None = None) -> QuerySet[Notification]:
    qs = Notification.objects.filter(user=user)
    if unread is not None:
        qs = qs.filter(is_read=not unread)
    return qs.order_by("-created_at", "-id")


def bonus_totals(*, purchase_id: int) -> dict[str, Decimal]:
    return {row["kind"]: row["total"] for row in
            Bonus.objects.filter(purchase_id=purchase_id).values("kind").annotate(total=Sum("amount"))}


@dataclass(frozen=True)
class Preview:
    """What a purchase would pay (§11), with what it was asked about resolved."""

    user: User
    option: Option
    packs: int
    price: Decimal
    when: datetime
    outcome: rules.Outcome


def _preview(*, user: User, option, packs: int = 1, price=None, when=None) -> Preview:
    """Validate the question, then run the rules on a snapshot (`mlm.engine.preview`). Writes nothing."""
    from mlm import engine

    if user.is_system_root:
        raise field_error("user", "The system root does not buy.", code="system_root")
    if isinstance(packs, bool) or not isinstance(packs, int) or not 1 <= packs <= MAX_PACKS:
        raise field_error("packs", f"packs must be a whole number between 1 and {MAX_PACKS}.",
                          code="invalid_packs")
    option = _option(option)
    if price is None:
        price = option.pack_price * packs
    else:
        try:
            price = to_money(price, field="price")
        except ValidationError as exc:
            raise field_error("price", " ".join(exc.messages), code="invalid_price") from None
    when = when or timezone.now()
    if not isinstance(when, datetime) or timezone.is_naive(when):
        raise field_error("when", "when must be a timezone-aware date and time.", code="naive_datetime")
    user = User.objects.only("id", "email", "path", "is_system_root").get(pk=user.pk)
    return Preview(user=user, option=option, packs=packs, price=price, when=when,
                   outcome=engine.preview(user=user, option=option, price=price, when=when))


def _option(option) -> Option:
    """An `Option`, or its id."""
    if isinstance(option, Option):
        return option
    try:
        found = Option.objects.select_related("project").filter(pk=option).first()
    except (TypeError, ValueError):
        found = None
    if found is None:
        raise field_error("option", "Unknown option.", code="unknown_option")
    return found


def purchase_preview(*, user: User, option, packs: int = 1, price=None, when=None) -> list[dict]:
    """What processing a purchase by `user` of `packs` × `option` (or at `price`) dated `when`
    would create (§11): `{"user_id", "kind", "level", "rate", "amount"}` per bonus, computed by
    the same rules on the same data as processing. Writes nothing."""
    outcome = _preview(user=user, option=option, packs=packs, price=price, when=when).outcome
    return [{"user_id": b.user_id, "kind": b.kind, "level": b.level, "rate": b.rate, "amount": b.amount}
            for b in outcome.bonuses]


def purchase_preview_staff(*, user: User, option, packs: int = 1, price=None, when=None) -> dict:
    """The operator's preview (staff API, admin page): every bonus with its recipient's e-mail
    and, for options bonuses, the options granted; `total` sums them. Writes nothing."""
    pv = _preview(user=user, option=option, packs=packs, price=price, when=when)
    bonuses = pv.outcome.bonuses
    emails = dict(User.objects.filter(pk__in={b.user_id for b in bonuses}).values_list("id", "email"))
    return {"member_id": pv.user.pk, "email": pv.user.email, "option": pv.option.pk, "packs": pv.packs,
            "price": pv.price, "when": pv.when,
            "bonuses": [{"user_id": b.user_id, "email": emails.get(b.user_id, ""), "kind": b.kind, "level": b.level,
                         "rate": b.rate, "amount": b.amount, "options": b.grant_shares or None,
                         "option_id": b.grant_option.id if b.grant_option else None} for b in bonuses],
            "total": sum((b.amount for b in bonuses), ZERO)}


UPLINE_KINDS = (rules.DIFFERENTIAL, rules.PIONEER, rules.SYSTEM_COMPRESSION)


def purchase_preview_member(*, user: User, option, packs: int = 1) -> dict:
    """A member's preview of its own purchase now (§11), without anyone's name: `own` (its
    investment and Grace Day bonuses, in options), `referral` (what its sponsor would get, an
    amount) and `upline_total` (differentials, pioneer bonuses and the root's share). Only an
    option for sale can be previewed. Writes nothing."""
    option = _option(option)
    if not option.is_active or not option.project.is_active:
        raise field_error("option", f"The option {option} is not for sale.", code="inactive_option")
    pv = _preview(user=user, option=option, packs=packs)
    bonuses = pv.outcome.bonuses
    own = [{"kind": b.kind, "rate": b.rate, "amount": b.amount, "options": b.grant_shares,
            "option_id": b.grant_option.id} for b in bonuses if b.user_id == pv.user.pk and b.grant_option]
    return {"option": pv.option.pk, "packs": pv.packs, "price": pv.price, "when": pv.when, "own": own,
            "own_total": sum((b["amount"] for b in own), ZERO),
            "referral": sum((b.amount for b in bonuses if b.kind == rules.REFERRAL), ZERO),
            "upline_total": sum((b.amount for b in bonuses if b.kind in UPLINE_KINDS), ZERO)}


# --- the monthly payout of held bonuses (money-lifecycle §1) ---------------------------------

def payout_month(month) -> date:
    """The first day of the month to pay for, from any `date` (or aware datetime) in it."""
    if not isinstance(month, date):
        message = f"The month must be a date in the month to pay for, not {month!r}."
        raise ValidationError({"month": ValidationError(message, code="invalid_month")}, code="invalid_month")
    return month_start(month)


def payout_refusal(start: date, *, today: date | None = None) -> str | None:
    """Why month `start` cannot be paid now (None: it can). The beat pays month M on
    `payout_day` of M+1; an operator may pay a past month, or the current one early (its bonuses
    earned after that run wait for the next month's run, which pays every older leftover). A
    month that has not begun has nothing to pay."""
    today = today or timezone.now().date()  # UTC
    if start > month_start(today):
        return f"{start:%Y-%m} has not begun: there is nothing to pay for it yet."
    return None


def payout_early_warning(start: date, *, today: date | None = None) -> str | None:
    """For the current month: what paying it now means (None for a month that is over)."""
    today = today or timezone.now().date()
    if start == month_start(today):
        return (f"{start:%Y-%m} is not over: bonuses earned after this run wait for the next "
                "month's run (one run per month).")
    return None


def payable_bonuses(*, month: date) -> QuerySet[Bonus]:
    """The held bonuses a payout run for the month of `month` pays: every `pending` bonus
    earned before the first day of the next month — a purchase's bonuses by when they were
    created, a global pool's by the month the pool pays for (the pool of M is made on the 3rd
    of M+1 and belongs to M's payout on the 5th). Earlier months' leftovers are included."""
    end = month_next(month_start(month))
    end_at = datetime(end.year, end.month, 1, tzinfo=UTC)
    return Bonus.objects.filter(Q(pool_run__isnull=True, created_at__lt=end_at) | Q(pool_run__month__lt=end),
                                status=Bonus.Status.PENDING)


def payout_preview(*, month: date, top: int | None = None) -> dict:
    """What `payout_run(month=…)` would pay now; writes nothing. Keys: `month` (first day),
    `total`, `count` (bonuses), `members`, `by_kind` ({kind: {"amount", "count"}}), `by_member`
    (a list of {"user_id", "email", "amount", "count"}, largest first; the first `top` only when
    given), `already_run` and `run` (the run's figures when the month was paid: a second run
    pays nothing, so the totals are then zero), `runnable` and `refusal` (why not, or None),
    `warning` (paying the current month early, or None).
    Four queries."""
    start = payout_month(month)
    run = PayoutRun.objects.filter(month=start).first()
    refusal = payout_refusal(start)
    if run is not None:
        refusal = f"{start:%Y-%m} was already paid out on {run.created_at:%Y-%m-%d %H:%M} UTC."
    out = {"month": start, "already_run": run is not None, "runnable": refusal is None, "refusal": refusal,
           "warning": payout_early_warning(start) if run is None else None,
           "run": ({"id": run.pk, "bonuses": run.bonuses, "total": run.total, "created_at": run.created_at}
                   if run else None),
           "total": ZERO, "count": 0, "members": 0, "by_kind": {}, "by_member": []}
    if run is not None:
        return out
    qs = payable_bonuses(month=start)
    agg = qs.aggregate(total=Sum("amount"), count=Count("id"), members=Count("user_id", distinct=True))
    out.update(total=agg["total"] or ZERO, count=agg["count"], members=agg["members"])
    out["by_kind"] = {row["kind"]: {"amount": row["amount"], "count": row["count"]}
                      for row in qs.values("kind").annotate(amount=Sum("amount"), count=Count("id"))
                      .order_by("kind")}
    members = (qs.values("user_id", "user__email").annotate(amount=Sum("amount"), count=Count("id"))
               .order_by("-amount", "user_id"))
    out["by_member"] = [{"user_id": m["user_id"], "email": m["user__email"], "amount": m["amount"],
                         "count": m["count"]} for m in (members[:top] if top else members)]
    return out


def payout_runs() -> QuerySet[PayoutRun]:
    return PayoutRun.objects.select_related("created_by").order_by("-month")


