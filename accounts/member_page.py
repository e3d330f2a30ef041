"""What the member page (the member's change page in the admin) shows besides the form: the
balances, the MLM summary with labels people read, the upline, the first level of the genealogy
tree, and one paginated table per section — purchases, ledger, bonuses, withdrawals, rank
history — each with a link to the full list filtered on the member, and each shown only to an
operator who may view its model (SECTION_PERMISSIONS).

Everything here reads; nothing writes. The page loads a constant number of queries whatever
the size of the member's history or network: each section is one count and one page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts import genealogy
from accounts.models import LedgerEntry, User
from common.display import EMPTY, money, rate, short_hash, when

SECTION_SIZE = 20

# mlm.selectors.member_summary's keys → (label, how the value is shown).
SUMMARY_LABELS: dict[str, tuple[str, str]] = {
    "rank_name": ("Rank", "text"),
    "rate": ("Differential rate", "rate"),
    "is_active": ("Active this month", "bool"),
    "is_pioneer": ("Pioneer", "bool"),
    "pv": ("Personal volume (PV)", "money"),
    "monthly_pv": ("Personal volume this month", "money"),
    "fv": ("Full volume (FV, whole downline)", "money"),
    "tv": ("Team volume (TV, qualifying)", "money"),
    "max_branch": ("Largest branch volume", "money"),
    "cap": ("Branch cap (most one branch counts)", "money"),
    "next_rank_name": ("Next rank", "text"),
    "gap": ("Team volume still needed for the next rank", "money"),
    "gap_pv": ("Personal volume still needed for the next rank", "money"),
    "partners_required": ("Active partners the next rank requires", "text"),
    "loyalty_streak": ("Grace Day streak (months)", "text"),
    "is_loyalty_qualified": ("Loyalty-qualified", "bool"),
    "bonuses_pending": ("Cash bonuses held (pending payout)", "money"),
    "bonuses_paid": ("Cash bonuses paid", "money"),
    "bonuses_reversed": ("Cash bonuses taken back by refunds", "money"),
    "clawback_debt": ("Clawback debt", "money"),
}


def summary_rows(summary: dict) -> list[tuple[str, str]]:
    """The summary as (label, shown value) rows, in the order of SUMMARY_LABELS; keys the page
    does not know are shown too (under their key), so nothing the selector adds is hidden."""
    rows = []
    for key, (label, kind) in SUMMARY_LABELS.items():
        if key not in summary:
            continue
        value = summary[key]
        if kind == "bool":
            shown = "yes" if value else "no"
        elif kind == "money":
            shown = money(value)
        elif kind == "rate":
            shown = rate(value)
        else:
            shown = EMPTY if value in (None, "") else str(value)
        rows.append((label, shown))
    known = set(SUMMARY_LABELS) | {"rank", "next_rank"}  # the codes: their names are shown
    rows += [(key.replace("_", " "), str(value)) for key, value in summary.items() if key not in known]
    return rows


@dataclass
class Section:
    key: str
    title: str
    headers: list[str]
    page: Page
    rows: list[list] = field(default_factory=list)
    see_all: str = ""
    numeric: tuple[int, ...] = ()  # the columns of amounts (right-aligned)

    @property
    def page_param(self) -> str:
        return f"{self.key}_page"


def _page(qs, number) -> Page:
    return Paginator(qs, SECTION_SIZE).get_page(number)


def _filtered(changelist: str, member: User) -> str:
    return f"{reverse(changelist)}?user__id__exact={member.pk}"


def _link(url_name: str, pk, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(url_name, args=[pk]), text)


def _purchases(member: User, number, may_refund: bool) -> Section:
    from purchases.models import Purchase

    back = urlencode({"next": reverse("admin:accounts_user_change", args=[member.pk])})
    page = _page(Purchase.objects.filter(user=member).select_related("project", "option")
                 .order_by("-created_at", "-id"), number)
    rows = []
    for p in page:
        if may_refund and p.refunded_at is None and p.kind != Purchase.Kind.BONUS:
            action = format_html('<a class="refund-link" href="{}">Refund…</a>',
                                 f'{reverse("admin:purchases_purchase_refund", args=[p.pk])}?{back}')
        else:
            action = ""
        rows.append([_link("admin:purchases_purchase_change", p.pk, f"#{p.pk}"), when(p.created_at),
                     f"{p.project.name} · {p.option.name}", p.get_kind_display(), f"{p.shares:,}",
                     money(p.price), "refunded " + when(p.refunded_at) if p.refunded_at else "",
                     action])
    return Section("purchases", "Purchases", ["#", "date", "project · option", "kind", "shares",
                                              "price (USD)", "refund", ""], page, rows,
                   _filtered("admin:purchases_purchase_changelist", member), numeric=(4, 5))


def _ledger(member: User, number) -> Section:
    page = _page(LedgerEntry.objects.filter(user=member).order_by("-created_at", "-id"), number)
    rows = [[when(e.created_at), e.get_wallet_display(), e.get_reason_display(),
             money(e.amount), money(e.balance_after), e.description] for e in page]
    return Section("ledger", "Ledger", ["date", "wallet", "reason", "amount (USD)", "balance after", "description"],
                   page, rows, _filtered("admin:accounts_ledgerentry_changelist", member), numeric=(3, 4))


def _bonuses(member: User, number) -> Section:
    from mlm.models import Bonus

    page = _page(Bonus.objects.filter(user=member).order_by("-created_at", "-id"), number)
    rows = [[when(b.created_at), b.get_kind_display(), b.get_status_display(), money(b.amount),
             rate(b.rate) if b.rate is not None else EMPTY, EMPTY if b.level is None else str(b.level),
             _link("admin:purchases_purchase_change", b.purchase_id, f"#{b.purchase_id}")
             if b.purchase_id else (f"pool run #{b.pool_run_id}" if b.pool_run_id else EMPTY)] for b in page]
    return Section("bonuses", "Bonuses", ["date", "kind", "status", "amount (USD)", "rate", "level", "cause"],
                   page, rows, _filtered("admin:mlm_bonus_changelist", member), numeric=(3, 4))


def _withdrawals(member: User, number) -> Section:
    from withdrawals.models import Withdrawal

    page = _page(Withdrawal.objects.filter(user=member).order_by("-created_at", "-id"), number)
    rows = [[_link("admin:withdrawals_withdrawal_change", w.pk, f"#{w.pk}"), when(w.created_at),
             money(w.amount), money(w.fee), money(w.net_amount), w.get_status_display(),
             short_hash(w.destination)] for w in page]
    return Section("withdrawals", "Withdrawals", ["#", "date", "amount (USD)", "fee", "net", "status",
                                                  "destination"], page, rows,
                   _filtered("admin:withdrawals_withdrawal_changelist", member), numeric=(2, 3, 4))


def _ranks(member: User, number) -> Section:
    from mlm.models import RankHistory

    page = _page(RankHistory.objects.filter(user=member).select_related("old_rank", "new_rank", "created_by")
                 .order_by("-created_at", "-id"), number)
    rows = [[when(h.created_at), h.old_rank.name if h.old_rank else EMPTY, h.new_rank.name,
             h.get_reason_display(), h.note, str(h.created_by) if h.created_by else EMPTY] for h in page]
    return Section("ranks", "Rank history", ["date", "from", "to", "reason", "note", "by"], page, rows,
                   _filtered("admin:mlm_rankhistory_changelist", member))


UPLINE_SHOWN = (3, 10)  # a long upline shows its top and its bottom; the middle folds away


def upline_parts(upline: list[User]) -> dict:
    head, tail = UPLINE_SHOWN
    if len(upline) <= head + tail + 2:
        return {"upline": upline, "upline_head": upline, "upline_folded": [], "upline_tail": []}
    return {"upline": upline, "upline_head": upline[:head], "upline_folded": upline[head:-tail],
            "upline_tail": upline[-tail:]}


# Each section shows the rows of one model: only to operators who may view that model (as the
# dashboard's PANEL_PERMISSIONS), not to everyone who may view members.
SECTION_PERMISSIONS = {
    "purchases": "purchases.view_purchase",
    "ledger": "accounts.view_ledgerentry",
    "bonuses": "mlm.view_bonus",
    "withdrawals": "withdrawals.view_withdrawal",
    "ranks": "mlm.view_rankhistory",
}


def sections(member: User, params, *, user, may_refund: bool) -> list[Section]:
    """The sections ``user`` may see, of the five; ``params`` is the request's GET
    (``<section>_page=N``; any hostile value shows the first or last page)."""
    build = {"purchases": lambda number: _purchases(member, number, may_refund),
             "ledger": lambda number: _ledger(member, number),
             "bonuses": lambda number: _bonuses(member, number),
             "withdrawals": lambda number: _withdrawals(member, number),
             "ranks": lambda number: _ranks(member, number)}
    return [build[key](params.get(f"{key}_page")) for key, perm in SECTION_PERMISSIONS.items()
            if user.has_perm(perm)]


def context(member: User, request) -> dict:
    """Everything the member page adds to the change form's context."""
    from mlm.selectors import member_summary

    may_refund = request.user.has_perm("purchases.add_refund")
    summary = member_summary(user=member) if not member.is_system_root else {}
    return {
        "member": member,
        "balances": [("Active wallet (to buy with)", money(member.balance_active, "USD")),
                     ("Passive wallet (earnings)", money(member.balance_passive, "USD"))]
        + ([("Clawback debt", money(member.clawback_debt, "USD"))] if member.clawback_debt > Decimal(0) else []),
        "summary_rows": summary_rows(summary),
        "rank_name": summary.get("rank_name", ""),
        "referrals_count": User.objects.filter(sponsor_id=member.pk).count(),
        **upline_parts(genealogy.upline(member)),
        "tree": genealogy.children(parent_id=member.pk),
        "sections": sections(member, request.GET, user=request.user, may_refund=may_refund),
        "may_refund": may_refund,
        "may_deposit": request.user.has_perm("accounts.deposit") and request.user.pk != member.pk,
        "may_transfer": request.user.has_perm("accounts.transfer_between_members") and request.user.pk != member.pk,
        "may_set_rank": request.user.has_perm("mlm.add_rankhistory"),
        "preview_url": f"{reverse('admin:mlm_purchasepreview_changelist')}?{urlencode({'member': member.email})}",
        "set_rank_url": reverse("admin:mlm_membernetwork_set_rank", args=[member.pk]),
    }
