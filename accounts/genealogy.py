"""The sponsor tree as the back-office shows it: the upline from the path, the downline one level
at a time (children on demand), so a member page opens as fast in a 100,000-member network as in
a small one.

- `upline(user)`: the sponsors from the top of the tree down to the direct sponsor — the ids are
  read from the member's materialized path, the members in one query.
- `children(parent_id, offset, limit)`: one page of a member's direct referrals — the page of
  ids from the (sponsor, id) index, then their rows — each with its rank, PV and TV (the mlm
  stats row) and whether it has referrals itself (an EXISTS subquery on the sponsor index): one
  query whatever the number of children, plus one for the name of the lowest rank when a child
  has no stats row yet (never bought). No recursion.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef
from django.urls import reverse

from accounts.models import User
from common.display import money

CHILDREN_LIMIT = 200


def upline(user: User) -> list[User]:
    """The member's sponsors, the top of the tree first, the direct sponsor last (root excluded)."""
    ids = list(reversed(user.upline_ids))
    if not ids:
        return []
    found = User.objects.only("id", "email", "first_name", "last_name").in_bulk(ids)
    return [found[i] for i in ids if i in found]


_TOKEN = 987654321987


def _url_for(name: str):
    """``reverse(name, args=[pk])`` for many pks at the cost of one reverse()."""
    template = reverse(name, args=[_TOKEN])
    return lambda pk: template.replace(str(_TOKEN), str(pk))


def _lowest_rank_name() -> str:
    from mlm.models import Rank

    return Rank.objects.order_by("position").values_list("name", flat=True).first() or ""


def children(*, parent_id: int, offset: int = 0, limit: int = CHILDREN_LIMIT) -> dict:
    """One page of `parent_id`'s direct referrals, oldest first.

    Returns ``{"parent": id, "offset": n, "children": [...], "next": url or None}``; each child has
    id, email, name, rank, pv, tv (strings, 2 decimals), has_children and url (its member page).
    """
    offset = max(0, int(offset))
    limit = max(1, min(int(limit), CHILDREN_LIMIT))
    # The page of ids first (an index-only range scan on (sponsor, id)), then their rows and
    # stats: a hub with 30,000 referrals costs what one with 200 does.
    page = User.objects.filter(sponsor_id=parent_id).order_by("id").values("id")[offset:offset + limit + 1]
    qs = (User.objects.filter(pk__in=page).order_by("id")
          .annotate(has_children=Exists(User.objects.filter(sponsor_id=OuterRef("pk"))))
          .values("id", "email", "first_name", "last_name", "has_children",
                  "mlm_stats__rank__name", "mlm_stats__pv", "mlm_stats__tv"))
    rows = list(qs)
    has_more = len(rows) > limit
    rows = rows[:limit]
    lowest = _lowest_rank_name() if any(r["mlm_stats__rank__name"] is None for r in rows) else ""
    member_url = _url_for("admin:accounts_user_change")
    children_url = _url_for("admin:accounts_user_genealogy_children")
    url = children_url(parent_id)
    return {
        "parent": parent_id, "offset": offset, "next": f"{url}?offset={offset + limit}" if has_more else None,
        "children": [{
            "id": r["id"], "email": r["email"],
            "name": f"{r['first_name']} {r['last_name']}".strip(),
            "rank": r["mlm_stats__rank__name"] or lowest,
            "pv": money(r["mlm_stats__pv"] or 0), "tv": money(r["mlm_stats__tv"] or 0),
            "has_children": r["has_children"],
            "url": member_url(r["id"]), "children_url": children_url(r["id"]),
        } for r in rows],
    }
