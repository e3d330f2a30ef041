"""Row locks taken in primary-key order, so concurrent work cannot deadlock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import models, transaction

from common.bulk import ids_in


def lock_rows(model: type[models.Model], pks: Iterable[int], *, fields: Sequence[str] | None = None
              ) -> dict[int, models.Model]:
    """`SELECT … FOR UPDATE` the given rows, in ascending primary-key order.

    Must run inside `transaction.atomic()`. Returns {pk: instance}. One query.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_rows() must be called inside transaction.atomic()")
    ids = sorted(set(pks))
    if not ids:
        return {}
    # FOR NO KEY UPDATE: blocks other writers of these rows, but not inserts of rows that
    # reference them (a bonus or a ledger row of this member), which only need KEY SHARE.
    rows = model._default_manager.select_for_update(no_key=True).filter(pk__in=ids_in(ids))
    if fields:  # only what the caller reads (a member's row is wide)
        rows = rows.only(*fields)
    rows = rows.order_by("pk")
    return {row.pk: row for row in rows}
