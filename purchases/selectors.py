"""Reads of the purchases app."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from purchases.models import Option, Project, Purchase


def projects_for_sale() -> QuerySet[Project]:
    return (Project.objects.filter(is_active=True)
            .prefetch_related(Prefetch("options", queryset=Option.objects.filter(is_active=True)
                                       .order_by("pack_price"))))


def purchases_for(*, user: User, kind: str | None = None) -> QuerySet[Purchase]:
    qs = Purchase.objects.filter(user=user).select_related("project", "option")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-id")


def cheapest_active_option(*, project_id: int) -> Option | None:
    """The project's active option with the lowest unit price (pack price / pack shares)."""
    options = list(Option.objects.filter(project_id=project_id, is_active=True))
    return min(options, key=lambda o: (o.unit_price, o.pk), default=None)
