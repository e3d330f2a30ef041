"""Rows seeded by data migrations come back after a flush, and only then."""

import pytest
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from mlm.models import InvestmentTier, PlanSettings, Rank
from tokens.models import BuyOrderConfig, ExchangeRate


def _defaults():
    return {
        "root": User.objects.filter(is_system_root=True).count(),
        "ranks": sorted(Rank.objects.values_list("code", flat=True)),
        "tiers": InvestmentTier.objects.count(),
        "plan": PlanSettings.objects.count(),
        "buy_config": BuyOrderConfig.objects.count(),
        "usd_rate": ExchangeRate.objects.filter(currency="USD").count(),
        "schedules": sorted(PeriodicTask.objects.exclude(name__startswith="celery.")
                            .values_list("task", flat=True)),
    }


@pytest.mark.django_db(transaction=True)
def test_flush_restores_every_seeded_default():
    before = _defaults()
    assert before["root"] == 1 and len(before["ranks"]) == 5 and before["tiers"] == 4
    assert before["plan"] == before["buy_config"] == before["usd_rate"] == 1
    assert "tokens.buy_order_scheduled" in before["schedules"] and "mlm.ranks_update" in before["schedules"]

    call_command("flush", interactive=False)

    assert _defaults() == before


@pytest.mark.django_db
def test_a_live_database_keeps_an_operators_deletions():
    InvestmentTier.objects.filter(threshold=125000).delete()
    from django.apps import apps

    for config in apps.get_app_configs():  # what `migrate` sends at its end
        post_migrate.send(sender=config, app_config=config, verbosity=0, interactive=False,
                          using="default", apps=apps, plan=[])
    assert not InvestmentTier.objects.filter(threshold=125000).exists()
    assert InvestmentTier.objects.count() == 3
