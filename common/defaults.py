"""Restoring the rows that data migrations seed, after a database flush."""

from __future__ import annotations

from collections.abc import Callable

from django.apps import AppConfig
from django.apps import apps as registry
from django.db.models.signals import post_migrate


def restore_defaults_after_flush(app_config: AppConfig, *, marker_model: str, seed: Callable) -> None:
    """Run `seed(registry)` after every migrate or flush when `marker_model` has no row.

    A data migration seeds an app's defaults once; `flush` (and every transactional test)
    empties the tables and then sends `post_migrate`. Seeding only when the app's marker row
    (its settings singleton) is missing means a fresh or flushed database gets the defaults
    back, while a live database — where an operator may have deleted a default on purpose —
    is never touched.
    """

    def receiver(sender, using="default", **kwargs):
        model = registry.get_model(app_config.label, marker_model)
        if not model.objects.using(using).exists():
            seed(registry)

    post_migrate.connect(receiver, sender=app_config, weak=False,
                         dispatch_uid=f"{app_config.label}.restore_defaults_after_flush")
