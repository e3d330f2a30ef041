"""The pack-sale sweeper's high-water mark (:class:`tokens.models.PackSaleSweepMark`): the
sweeper looks only above it, so a sweep with nothing missing reads a few recent purchases, not
all of them.

Correct under concurrency: purchase ids come from a sequence, so a purchase can commit late
with an id below rows already committed. The mark therefore never moves to "the highest id
now". A sweep notes a *candidate* -- the highest committed purchase id, with the database's
``pg_snapshot_xmax`` at that moment -- and a later sweep moves the mark up to it only when

- every transaction running when it was noted has ended (the current ``pg_snapshot_xmin`` has
  reached the noted xmax): any purchase with an id at or below the candidate got its id before
  the candidate committed, so its transaction was running then (or had ended) -- it is now
  committed or rolled back, visible to the check below;
- the candidate is older than the grace period (the sweeper's ``older_than_minutes``), which
  also covers a transaction that took its id but had no transaction id yet when noted;
- no counted, unrefunded purchase between the mark and the candidate lacks its revenue (else
  the mark stops just below the first such purchase, and the sweeper keeps retrying it).

``manage.py tokens_record_pack_sales`` still scans every purchase (it ignores the mark): the
repair after a manual deletion of revenue rows, or after turning
``TOKENS_LEGACY_PURCHASES_ARE_REVENUE`` on. PostgreSQL only: elsewhere the mark stays 0 (every
sweep scans everything, as before).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from purchases.models import Purchase
from tokens.models import PackSaleSweepMark

SNAPSHOT_SQL = ("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
                "pg_snapshot_xmax(pg_current_snapshot())::text::bigint")


def pack_sales_mark() -> int:
    """Every counted purchase with an id up to this is recorded or refunded (0: none known)."""
    return PackSaleSweepMark.objects.filter(pk=PackSaleSweepMark.SINGLETON_PK).values_list("mark", flat=True) \
        .first() or 0


def can_advance(*, candidate, candidate_xmax, candidate_at, xmin: int, now, grace: timedelta) -> bool:
    """Whether a noted candidate may become the mark now (pure; see the module's text)."""
    return (candidate is not None and candidate_xmax is not None and candidate_at is not None
            and xmin >= candidate_xmax and candidate_at <= now - grace)


def pack_sales_mark_advance(*, grace: timedelta, first_missing) -> int:
    """Move the mark up to the candidate noted by an earlier sweep if it is safe, and note a new
    candidate; returns the mark. ``first_missing(after_id, up_to)`` gives the lowest purchase id
    in ``(after_id, up_to]`` still missing its revenue, or None. One short transaction; the
    mark row's lock keeps two sweepers from interleaving."""
    if connection.vendor != "postgresql":
        return pack_sales_mark()
    with transaction.atomic():
        with connection.cursor() as cursor:  # first, before this transaction takes an xid of its own
            cursor.execute(SNAPSHOT_SQL)
            xmin, xmax = cursor.fetchone()
        PackSaleSweepMark.objects.get_or_create(pk=PackSaleSweepMark.SINGLETON_PK)
        state = PackSaleSweepMark.objects.select_for_update().get(pk=PackSaleSweepMark.SINGLETON_PK)
        now = timezone.now()
        renew = state.candidate is None or state.candidate <= state.mark
        if can_advance(candidate=state.candidate, candidate_xmax=state.candidate_xmax,
                       candidate_at=state.candidate_at, xmin=xmin, now=now, grace=grace):
            missing = first_missing(state.mark, state.candidate)
            state.mark = max(state.mark, state.candidate if missing is None else missing - 1)
            renew = missing is None
        if renew:
            state.candidate = Purchase.objects.aggregate(top=Max("id"))["top"] or 0
            state.candidate_xmax = xmax
            state.candidate_at = now
        state.save()
    return state.mark
