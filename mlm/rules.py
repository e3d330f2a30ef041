"""The compensation plan's rules (compensation-plan.md §3–§9) as pure functions.

No query, no clock, no write: every function here takes plain data and returns plain
data, so processing, batches and the preview can run the very same code and cannot
disagree. The shell around it (loading a snapshot, writing an outcome) lives in the
modules that do I/O.

The central pair:

- `evaluate(snapshot, purchase) -> Outcome` — what one counted purchase pays (§5 steps
  1–6): volume changes, pioneer status, investment, differential, pioneer, root-share,
  referral and Grace Day bonuses, and the option grants behind option bonuses.
- `fold(snapshot, purchase, outcome)` — updates the in-memory snapshot as if the outcome
  had been written, so the next purchase of a batch sees it (monthly activity, the
  pioneer count, investment totals and bonuses already paid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from common.money import CENT, MONEY_QUANTUM, ZERO, round_down, round_money
from common.pricing import cheapest

# Bonus kinds, as stored (mlm.models.Bonus.Kind values).
DIFFERENTIAL = "differential"
PIONEER = "pioneer"
SYSTEM_COMPRESSION = "system_compression"
INVESTMENT = "investment"
REFERRAL = "referral"
GRACE_DAY = "grace_day"
GLOBAL_POOL = "global_pool"
CASH_KINDS = (DIFFERENTIAL, PIONEER, SYSTEM_COMPRESSION, GLOBAL_POOL)
OPTION_KINDS = (INVESTMENT, REFERRAL, GRACE_DAY)


# --- months ----------------------------------------------------------------------------------

def month_of(value: date | datetime) -> date:
    """The first day of the (UTC) month of a date or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("month_of() needs an aware datetime")
        value = value.astimezone(UTC).date()
    return value.replace(day=1)


def month_add(month: date, months: int) -> date:
    """`month` (any day) moved by `months` calendar months; returns a first day."""
    index = month.year * 12 + (month.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def month_next(month: date) -> date:
    return month_add(month, 1)


# --- the plan --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RankRule:
    id: int
    code: str
    rate: Decimal
    pv_required: Decimal = ZERO
    tv_required: Decimal = ZERO
    partners_required: int = 0
    position: int = 0


@dataclass(frozen=True)
class PlanRules:
    """The operator-editable plan as plain data (ranks by position, tiers by threshold)."""

    ranks: tuple[RankRule, ...]
    tiers: tuple[tuple[Decimal, Decimal], ...] = ()
    active_min_pv: Decimal = Decimal("200")
    pioneer_threshold: Decimal = Decimal("5000")
    pioneer_limit: int = 50
    pioneer_rate: Decimal = Decimal("0.04")
    referral_rate: Decimal = Decimal("0.01")
    referral_threshold: Decimal = Decimal("5000")
    branch_cap: Decimal = Decimal("0.50")
    max_levels: int = 50
    pool_rate: Decimal = Decimal("0.02")
    grace_day: int = 1
    grace_day_rate: Decimal = Decimal("0.05")
    loyalty_months: int = 3
    _by_id: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.ranks:
            raise ValueError("The plan has no ranks.")
        ordered = tuple(sorted(self.ranks, key=lambda r: r.position))
        object.__setattr__(self, "ranks", ordered)
        object.__setattr__(self, "tiers", tuple(sorted(self.tiers)))
        object.__setattr__(self, "_by_id", {r.id: r for r in ordered})

    @property
    def lowest(self) -> RankRule:
        return self.ranks[0]

    @property
    def top(self) -> RankRule:
        return self.ranks[-1]

    @property
    def cap_rate(self) -> Decimal:
        """The plan cap: the highest differential rate (§2)."""
        return max(r.rate for r in self.ranks)

    def rank(self, rank_id: int | None) -> RankRule:
        """A member's rank; none stored means the lowest."""
        return self._by_id.get(rank_id) or self.lowest

    def next_rank(self, rank: RankRule) -> RankRule | None:
        return next((r for r in self.ranks if r.position > rank.position), None)

    def tier_rate(self, total: Decimal) -> Decimal:
        """§7: the rate of the highest tier whose threshold is ≤ `total`."""
        rate = ZERO
        for threshold, tier_rate in self.tiers:
            if threshold <= total:
                rate = tier_rate
        return rate

    def is_active(self, monthly_pv: Decimal | None) -> bool:
        """§3: active in a month = monthly PV ≥ the minimum. The one home of this rule."""
        return (monthly_pv or ZERO) >= self.active_min_pv

    def member_cap(self, rank: RankRule) -> Decimal:
        """§3: the branch cap of a member at `rank` (of the next rank's TV, or the top's)."""
        target = self.next_rank(rank) or self.top
        return round_money(target.tv_required * self.branch_cap, places=MONEY_QUANTUM)


# --- options ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class OptionInfo:
    id: int
    project_id: int
    pack_shares: int
    pack_price: Decimal

    @property
    def unit_price(self) -> Decimal:
        return self.pack_price / Decimal(self.pack_shares)


def options_for(option: OptionInfo, amount: Decimal) -> tuple[int, Decimal]:
    """qty = floor(amount / unit price), granted = qty × unit price (to 8 places, down)."""
    if amount <= 0:
        return 0, ZERO
    qty = int((amount * option.pack_shares / option.pack_price).to_integral_value(rounding=ROUND_FLOOR))
    if qty <= 0:
        return 0, ZERO
    granted = (qty * option.pack_price / Decimal(option.pack_shares)).quantize(MONEY_QUANTUM, rounding=ROUND_DOWN)
    return qty, granted


def cheapest_option(options: Iterable[OptionInfo]) -> OptionInfo | None:
    """§7: the option with the lowest unit price (ties: the lowest id) — `common.pricing.cheapest`,
    the one home of this choice (shared with `purchases`, which must not import mlm)."""
    return cheapest(options)


# --- the snapshot and the outcome ------------------------------------------------------------

@dataclass
class MemberState:
    user_id: int
    rank_id: int | None = None
    is_pioneer: bool = False


@dataclass(frozen=True)
class PurchaseFacts:
    """A counted purchase as the rules see it."""

    id: int
    user_id: int
    option: OptionInfo
    price: Decimal
    created_at: datetime
    upline_ids: tuple[int, ...]  # sponsor first, up to (not including) the root
    root_id: int

    @property
    def project_id(self) -> int:
        return self.option.project_id

    @property
    def month(self) -> date:
        return month_of(self.created_at)


@dataclass
class Snapshot:
    """What the rules read, for the members a batch of purchases touches.

    `invest_total[(user, project)]` is T before the next purchase (§7): the counted
    purchases processed so far and the bonus auto-purchases already granted;
    `invest_paid[(user, project)]` the member's investment bonuses so far.
    """

    plan: PlanRules
    members: dict[int, MemberState] = field(default_factory=dict)
    monthly_pv: dict[tuple[int, date], Decimal] = field(default_factory=dict)
    pioneer_count: int = 0
    invest_total: dict[tuple[int, int], Decimal] = field(default_factory=dict)
    invest_paid: dict[tuple[int, int], Decimal] = field(default_factory=dict)
    cheapest: dict[int, OptionInfo | None] = field(default_factory=dict)

    def member(self, user_id: int) -> MemberState:
        state = self.members.get(user_id)
        if state is None:
            state = self.members[user_id] = MemberState(user_id)
        return state

    def is_active(self, user_id: int, month: date) -> bool:
        return self.plan.is_active(self.monthly_pv.get((user_id, month)))


@dataclass(frozen=True)
class BonusOutcome:
    user_id: int
    kind: str
    amount: Decimal
    level: int | None = None
    rate: Decimal | None = None
    compression_applied: bool = False
    grant_option: OptionInfo | None = None  # option bonuses: what the auto-purchase buys
    grant_shares: int = 0

    @property
    def is_cash(self) -> bool:
        return self.kind in CASH_KINDS


@dataclass(frozen=True)
class Outcome:
    purchase_id: int
    buyer_id: int
    price: Decimal
    month: date
    fv_user_ids: tuple[int, ...]  # whose FV rises by `price` (the upline)
    becomes_pioneer: bool
    bonuses: tuple[BonusOutcome, ...]

    def by_kind(self, kind: str) -> list[BonusOutcome]:
        return [b for b in self.bonuses if b.kind == kind]


# --- one purchase (§5) -----------------------------------------------------------------------

def evaluate(snapshot: Snapshot, p: PurchaseFacts) -> Outcome:
    """§5 for one counted purchase, against `snapshot` as it stands. Does not change it."""
    plan = snapshot.plan
    month = p.month
    buyer = snapshot.member(p.user_id)
    price = p.price

    # 2. Pioneer status.
    becomes_pioneer = (not buyer.is_pioneer and price >= plan.pioneer_threshold
                       and snapshot.pioneer_count < plan.pioneer_limit)

    bonuses: list[BonusOutcome] = []
    grants: dict[tuple[int, int], Decimal] = {}  # auto-purchases of this purchase, for T

    # 3. Investment bonus.
    inv = investment_bonus(snapshot, p)
    if inv is not None:
        bonuses.append(inv)
        grants[(inv.user_id, inv.grant_option.project_id)] = inv.amount

    # 4. Differentials with dynamic compression, pioneer bonuses, the root's share.
    walk = p.upline_ids[:plan.max_levels]
    active = {uid for uid in walk if snapshot.is_active(uid, month)}
    pioneers = {uid for uid in walk if snapshot.member(uid).is_pioneer}
    ranks = {uid: snapshot.member(uid).rank_id for uid in walk}
    bonuses.extend(differentials(plan, price=price, buyer_rank_id=buyer.rank_id, walk=walk, active=active,
                                 ranks=ranks, pioneers=pioneers, root_id=p.root_id))

    # 5. Referral bonus.
    sponsor_id = p.upline_ids[0] if p.upline_ids else None
    if sponsor_id is not None and price >= plan.referral_threshold and snapshot.is_active(sponsor_id, month):
        ref = option_bonus(p.option, price * plan.referral_rate, user_id=sponsor_id, kind=REFERRAL,
                           rate=plan.referral_rate, level=1)
        if ref is not None:
            bonuses.append(ref)

    # 6. Grace Day bonus.
    if is_grace_day(plan, p.created_at) and plan.grace_day_rate > 0:
        grace = option_bonus(p.option, price * plan.grace_day_rate, user_id=p.user_id, kind=GRACE_DAY,
                             rate=plan.grace_day_rate)
        if grace is not None:
            bonuses.append(grace)

    return Outcome(purchase_id=p.id, buyer_id=p.user_id, price=price, month=month,
                   fv_user_ids=tuple(p.upline_ids), becomes_pioneer=becomes_pioneer, bonuses=tuple(bonuses))


def fold(snapshot: Snapshot, p: PurchaseFacts, outcome: Outcome) -> None:
    """Update `snapshot` in memory as if `outcome` had been written (for the next purchase)."""
    key = (p.user_id, outcome.month)
    snapshot.monthly_pv[key] = snapshot.monthly_pv.get(key, ZERO) + p.price
    project_key = (p.user_id, p.project_id)
    snapshot.invest_total[project_key] = snapshot.invest_total.get(project_key, ZERO) + p.price
    if outcome.becomes_pioneer:
        snapshot.member(p.user_id).is_pioneer = True
        snapshot.pioneer_count += 1
    for b in outcome.bonuses:
        if b.grant_option is not None:
            k = (b.user_id, b.grant_option.project_id)
            snapshot.invest_total[k] = snapshot.invest_total.get(k, ZERO) + b.amount
        if b.kind == INVESTMENT:
            k = (b.user_id, b.grant_option.project_id)
            snapshot.invest_paid[k] = snapshot.invest_paid.get(k, ZERO) + b.amount


def evaluate_many(snapshot: Snapshot, purchases: Sequence[PurchaseFacts], *,
                  earlier: Sequence[tuple[int, int, int, Decimal]] = ()) -> list[Outcome]:
    """Evaluate purchases in id order, folding each outcome into the snapshot.

    `earlier`: counted purchases outside `purchases` that precede some of them (a backlog), as
    (id, user_id, project_id, price); each is added to T (§7) once the walk passes its id.
    """
    pending = sorted(earlier)
    outcomes = []
    for p in sorted(purchases, key=lambda x: x.id):
        while pending and pending[0][0] < p.id:
            _, uid, project_id, price = pending.pop(0)
            snapshot.invest_total[(uid, project_id)] = snapshot.invest_total.get((uid, project_id), ZERO) + price
        outcome = evaluate(snapshot, p)
        fold(snapshot, p, outcome)
        outcomes.append(outcome)
    return outcomes


# --- the rules one by one --------------------------------------------------------------------

def investment_bonus(snapshot: Snapshot, p: PurchaseFacts) -> BonusOutcome | None:
    """§7: owed = T × tier rate − earlier investment bonuses, paid in options of the project's
    cheapest active option. T counts the purchases before p in processing order, p itself, and
    the bonus auto-purchases already granted."""
    plan = snapshot.plan
    key = (p.user_id, p.project_id)
    total = snapshot.invest_total.get(key, ZERO) + p.price
    rate = plan.tier_rate(total)
    if rate <= 0:
        return None
    owed = total * rate - snapshot.invest_paid.get(key, ZERO)
    option = snapshot.cheapest.get(p.project_id)
    if owed <= 0 or option is None:
        return None  # nothing owed, or owed until the project has an active option
    return option_bonus(option, owed, user_id=p.user_id, kind=INVESTMENT, rate=rate)


def option_bonus(option: OptionInfo, amount: Decimal, *, user_id: int, kind: str, rate: Decimal,
                 level: int | None = None) -> BonusOutcome | None:
    """An option bonus (§7, §8, §8a): whole options of `option` worth at most `amount`."""
    qty, granted = options_for(option, amount)
    if qty <= 0:
        return None
    return BonusOutcome(user_id=user_id, kind=kind, amount=granted, level=level, rate=rate,
                        grant_option=option, grant_shares=qty)


def differentials(plan: PlanRules, *, price: Decimal, buyer_rank_id: int | None, walk: Sequence[int],
                  active: set[int], ranks: Mapping[int, int | None], pioneers: set[int],
                  root_id: int) -> list[BonusOutcome]:
    """§6: differentials with dynamic compression, pioneer bonuses and the root's share.

    Differentials plus the root's share equal round(X × (cap − buyer's rate)) to the cent.
    """
    cap = plan.cap_rate
    buyer_rate = plan.rank(buyer_rank_id).rate
    last = buyer_rate
    compressed = False
    paid = ZERO
    out: list[BonusOutcome] = []
    pioneer_levels: list[tuple[int, int]] = []
    for level, uid in enumerate(walk, start=1):
        if last >= cap:
            break
        if uid not in active:
            compressed = True
            continue
        rate = plan.rank(ranks.get(uid)).rate
        if rate > last:
            amount = round_money(price * (rate - last))
            if amount > 0:
                out.append(BonusOutcome(user_id=uid, kind=DIFFERENTIAL, amount=amount, level=level,
                                        rate=rate - last, compression_applied=compressed))
                paid += amount
                if uid in pioneers:
                    pioneer_levels.append((uid, level))
            compressed = False
            last = rate
    if last < cap:
        share = round_money(price * (cap - buyer_rate)) - paid
        if share > 0:
            out.append(BonusOutcome(user_id=root_id, kind=SYSTEM_COMPRESSION, amount=share, rate=cap - last,
                                    compression_applied=compressed))
    pioneer_amount = round_money(price * plan.pioneer_rate)
    if pioneer_amount > 0:
        out.extend(BonusOutcome(user_id=uid, kind=PIONEER, amount=pioneer_amount, level=level,
                                rate=plan.pioneer_rate) for uid, level in pioneer_levels)
    return out


def is_grace_day(plan: PlanRules, when: datetime) -> bool:
    """§8a: the purchase is dated (UTC) on the month's Grace Day."""
    return when.astimezone(UTC).day == plan.grace_day if isinstance(when, datetime) else when.day == plan.grace_day


def loyalty_streak(plan: PlanRules, grace_months: Iterable[date], *, today: date) -> int:
    """§8a: consecutive months with a counted purchase on their Grace Day, up to the latest.

    The current month counts when it has one; before (or on) its Grace Day it is still open,
    so the streak runs up to last month; after its Grace Day without one, the streak is 0.
    """
    months = {month_of(m) for m in grace_months}
    current = month_of(today)
    if current in months:
        cursor = current
    elif today.day <= plan.grace_day:
        cursor = month_add(current, -1)
    else:
        return 0
    streak = 0
    while cursor in months:
        streak += 1
        cursor = month_add(cursor, -1)
    return streak


def is_loyalty_qualified(plan: PlanRules, streak: int) -> bool:
    return plan.loyalty_months > 0 and streak >= plan.loyalty_months


# --- team volume and ranks (§3, §4) ----------------------------------------------------------

@dataclass(frozen=True)
class TeamVolume:
    tv: Decimal
    max_branch: Decimal
    cap: Decimal
    next_rank: RankRule | None
    gap: Decimal


def team_volume(plan: PlanRules, rank: RankRule, branch_volumes: Iterable[Decimal]) -> TeamVolume:
    """§3: TV = Σ min(branch volume, cap) over the direct referrals, with the gap to the next rank."""
    vols = list(branch_volumes)
    cap = plan.member_cap(rank)
    tv = sum((min(v, cap) for v in vols), ZERO)
    nxt = plan.next_rank(rank)
    return TeamVolume(tv=tv, max_branch=max(vols, default=ZERO), cap=cap, next_rank=nxt,
                      gap=max(ZERO, nxt.tv_required - tv) if nxt else ZERO)


def rank_earned(plan: PlanRules, current: RankRule, *, pv: Decimal, tv: Decimal, active_partners: int,
                is_active: bool) -> RankRule | None:
    """§4: the highest rank above `current` whose every requirement holds (None: no change).
    Only members active this month advance; ranks are never lowered here."""
    if not is_active:
        return None
    best = None
    for r in plan.ranks:
        if r.position > current.position and pv >= r.pv_required and tv >= r.tv_required \
                and active_partners >= r.partners_required:
            best = r
    return best


# --- global pool (§9) ------------------------------------------------------------------------

@dataclass(frozen=True)
class PoolSplit:
    pool: Decimal
    share: Decimal
    remainder: Decimal


def pool_split(plan: PlanRules, *, company_volume: Decimal, qualifiers: int) -> PoolSplit:
    """§9: pool = rate × company volume, split equally (shares rounded down to the cent); the
    rounding remainder goes to the root. No qualifier: nothing is paid."""
    pool = round_money(company_volume * plan.pool_rate)
    if qualifiers <= 0 or pool <= 0:
        return PoolSplit(pool=pool, share=ZERO, remainder=ZERO)
    share = round_down(pool / qualifiers, CENT)
    return PoolSplit(pool=pool, share=share, remainder=pool - share * qualifiers)
