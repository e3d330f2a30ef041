"""The settings row, a default USD→ZAR rate and the beat task, so a fresh deployment works.

The USD rate is a placeholder so that pack sales (priced in USD) are never refused for want
of a rate; operators replace it in the admin (the newest row wins). Its value comes from
the setting TOKENS_DEFAULT_USD_TO_ZAR_RATE when the migration runs.
"""

from decimal import Decimal

from django.conf import settings
from django.utils import timezone

TASK_NAME = "tokens: scheduled buy-order"
REVERSALS_SWEEP_NAME = "tokens: sweep refund reversals"
REVERSALS_SWEEP_TASK = "tokens.pack_sale_reversals_sweep"
PRICE_TICK_NAME = "tokens: price observations and buy slices"
PRICE_TICK_TASK = "tokens.price_tick"
PACK_SALES_SWEEP_NAME = "tokens: sweep pack-sale revenue"
PACK_SALES_SWEEP_TASK = "tokens.pack_sales_sweep"
CHAIN_SWEEP_NAME = "tokens: replace stuck transactions"
CHAIN_SWEEP_TASK = "tokens.chain_tx_sweep"


def seed(apps, schema_editor=None):
    """Create the defaults that are missing. `apps` is a migration's app registry or
    django.apps.apps (the post_migrate restore)."""
    BuyOrderConfig = apps.get_model("tokens", "BuyOrderConfig")
    ExchangeRate = apps.get_model("tokens", "ExchangeRate")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")

    config, _ = BuyOrderConfig.objects.get_or_create(pk=1)
    if not ExchangeRate.objects.filter(currency="USD").exists():
        rate = Decimal(str(getattr(settings, "TOKENS_DEFAULT_USD_TO_ZAR_RATE", "18.00")))
        ExchangeRate.objects.create(currency="USD", rate_to_zar=rate, valid_from=timezone.now(),
                                    note="Default seeded by migration: replace it with a current rate.")
    if not PeriodicTask.objects.filter(name=TASK_NAME).exists():
        # The default schedule is daily at 00:00 in the settings' timezone (UTC).
        crontab = CrontabSchedule.objects.create(minute="0", hour="0", day_of_month="*", month_of_year="*",
                                                 day_of_week="*", timezone=config.timezone)
        PeriodicTask.objects.create(name=TASK_NAME, task="tokens.buy_order_scheduled", crontab=crontab,
                                    enabled=config.enabled,
                                    description="Buys AZR with the available revenue, at most once per "
                                                "period. Follows the buy-order settings.")
    seed_reversals_sweep(apps)
    seed_price_tick(apps)
    seed_pack_sales_sweep(apps)
    seed_chain_sweep(apps)


def seed_reversals_sweep(apps, schema_editor=None):
    """The beat row of the refund-reversal sweeper (every 5 minutes), created only when missing."""
    _seed_every(apps, REVERSALS_SWEEP_NAME, REVERSALS_SWEEP_TASK, 5,
                "Every 5 minutes: reverses the pack-sale revenue of refunded purchases whose refund "
                "message was lost.")


def seed_pack_sales_sweep(apps, schema_editor=None):
    """The beat row of the pack-sale revenue sweeper (every 5 minutes), created only when missing."""
    _seed_every(apps, PACK_SALES_SWEEP_NAME, PACK_SALES_SWEEP_TASK, 5,
                "Every 5 minutes: records the pack-sale revenue of counted purchases still missing it "
                "(a lost task, or no USD rate at the time).")


def seed_price_tick(apps, schema_editor=None):
    """The beat row of the price tick (every minute: a price observation for the TWAP, then the
    due slices and deferred buys of the period), created only when missing."""
    _seed_every(apps, PRICE_TICK_NAME, PRICE_TICK_TASK, 1,
                "Every minute: records the pair's cumulative price (the TWAP's observations), then runs "
                "the buy slices that are due and retries a buy the price guard deferred in this period.")


def _seed_every(apps, name: str, task: str, minutes: int, description: str) -> None:
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=name).exists():
        return  # an operator's edits survive
    interval = (IntervalSchedule.objects.filter(every=minutes, period="minutes").first()
                or IntervalSchedule.objects.create(every=minutes, period="minutes"))
    PeriodicTask.objects.create(name=name, task=task, interval=interval, enabled=True, description=description)


def seed_chain_sweep(apps, schema_editor=None):
    """The beat row of the transaction sweep (every minute), created only when missing."""
    _seed_every(apps, CHAIN_SWEEP_NAME, CHAIN_SWEEP_TASK, 1,
                "Every minute: replaces transactions pending too long (same nonce, higher fee), broadcasts lost "
                "ones again, settles pending buy-orders.")
