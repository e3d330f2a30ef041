"""The Celery app. Configuration comes from Django settings (namespace CELERY_)."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu.utils.objects import cached_property

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class BackOfficeCelery(Celery):
    @cached_property
    def Beat(self, **kwargs):  # noqa: N802 - Celery's name
        """`celery beat` that stops cleanly between ticks (config.beat)."""
        return self.subclass_with_self("config.beat:Beat")


app = BackOfficeCelery("azr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@worker_process_init.connect
def _keep_recursion_limit_sane(**kwargs):
    """Keep the recursion limit sane in the worker and each pool process (common.runtime):
    the chain libraries raise it to 100,000 on import."""
    from common.runtime import limit_recursion

    limit_recursion()
