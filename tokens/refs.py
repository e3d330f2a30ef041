"""The external references of pack-sale revenue: ONE builder each, used by whatever records,
sweeps, reverses or looks up that revenue.

Given an id, a builder returns the text (``purchase:42``); given an expression
(``OuterRef("pk")``, ``F("purchase_id")``) it returns the same text built by the database, so
a sweeper's anti-join compares exactly what the writer stored.
"""

from __future__ import annotations

from django.db.models import CharField, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Concat

PACK_SALE_PREFIX = "purchase:"
REFUND_PREFIX = "refund:"


def _ref(prefix: str, key):
    if isinstance(key, Combinable):
        return Concat(Value(prefix), Cast(key, CharField()), output_field=CharField())
    return f"{prefix}{int(key)}"


def pack_sale_ref(purchase_id):
    """The reference of a purchase's `pack_sale` revenue: ``purchase:<purchase id>``."""
    return _ref(PACK_SALE_PREFIX, purchase_id)


def refund_ref(refund_id):
    """The reference of a refund's reversal of that revenue: ``refund:<refund id>``."""
    return _ref(REFUND_PREFIX, refund_id)
