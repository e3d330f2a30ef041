"""Settings validation and audit, the periodic task following them, pack-sale revenue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from purchases.services import purchase_create
from tests.factories import OptionFactory, UserFactory
from tokens.models import BuyOrderConfigChange, ExchangeRate, Revenue
from tokens.schedule import period_key
from tokens.selectors import buy_order_config
from tokens.services import PERIODIC_TASK, PERIODIC_TASK_NAME, buy_order_config_update, exchange_rate_set

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("changes", [
    {"revenue_percentage": "0"}, {"revenue_percentage": "1.01"}, {"revenue_percentage": "-0.1"},
    {"revenue_percentage": 0.1}, {"revenue_percentage": "NaN"},
    {"execution_schedule": "hourly"}, {"execution_schedule": "61 * * * *"}, {"execution_schedule": "* * * *"},
    {"execution_schedule": "0 0 30 2 *"},
    {"timezone": "Mars/Olympus"}, {"timezone": ""},
    {"min_buy_amount": "0"}, {"min_buy_amount": "2000000"}, {"max_buy_amount": "50"},
    {"max_slippage": "1"}, {"max_slippage": "-0.01"},
    {"disposition": "keep"}, {"enabled": "yes"}, {"colour": "blue"},
])
def test_invalid_settings_are_refused_and_nothing_changes(changes):
    before = buy_order_config()

    with pytest.raises(ValidationError):
        buy_order_config_update(**changes)

    after = buy_order_config()
    assert [getattr(after, f) for f in ("revenue_percentage", "execution_schedule", "timezone", "min_buy_amount",
                                        "max_buy_amount", "max_slippage", "disposition", "enabled")] == \
        [getattr(before, f) for f in ("revenue_percentage", "execution_schedule", "timezone", "min_buy_amount",
                                      "max_buy_amount", "max_slippage", "disposition", "enabled")]
    assert BuyOrderConfigChange.objects.count() == 0


def test_each_change_is_audited_with_who_and_old_and_new():
    operator = UserFactory(is_staff=True)

    buy_order_config_update(changed_by=operator, revenue_percentage="0.2", max_slippage="0.005")
    buy_order_config_update(changed_by=operator, revenue_percentage="0.2")  # no change: no row

    change = BuyOrderConfigChange.objects.get()
    assert change.changed_by == operator and change.changed_at
    assert change.changes == {"revenue_percentage": {"old": "0.1000", "new": "0.2000"},
                              "max_slippage": {"old": "0.0100", "new": "0.0050"}}


def test_the_periodic_task_follows_the_settings_and_is_never_recreated():
    task = PeriodicTask.objects.get(name=PERIODIC_TASK_NAME)  # created by the migration
    assert task.task == PERIODIC_TASK and task.enabled
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "0", "*")
    task.description = "an operator's note"
    task.save()

    buy_order_config_update(execution_schedule="weekly", timezone="Africa/Johannesburg")
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month, task.crontab.day_of_week) == \
        ("0", "0", "*", "1")
    assert str(task.crontab.timezone) == "Africa/Johannesburg"

    buy_order_config_update(execution_schedule="30 2 1 * *")
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("30", "2", "1")

    buy_order_config_update(enabled=False)
    task.refresh_from_db()
    assert not task.enabled

    assert PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).count() == 1
    assert PeriodicTask.objects.get(name=PERIODIC_TASK_NAME).pk == task.pk
    assert task.description == "an operator's note"


def test_period_keys_name_the_period_in_the_schedules_timezone():
    now = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # already the 22nd in Johannesburg

    assert period_key("daily", "Africa/Johannesburg", now) == "daily@2026-11-22T00:00+02:00"
    assert period_key("daily", "UTC", now) == "daily@2026-11-21T00:00+00:00"
    assert period_key("weekly", "UTC", now) == "weekly@2026-11-16T00:00+00:00"
    assert period_key("monthly", "UTC", now) == "monthly@2026-11-01T00:00+00:00"
    assert period_key("0 */6 * * *", "UTC", now) == "0 */6 * * *@2026-11-21T18:00+00:00"


# --- Revenue and pack sales ------------------------------------------------------------------------


def test_the_newest_rate_wins_and_no_rate_is_a_clear_error():
    from tokens.services import revenue_track

    with pytest.raises(ValidationError, match="No exchange rate for GBP"):
        revenue_track(source="other", amount="10", currency="GBP")
    exchange_rate_set(currency="GBP", rate_to_zar="22")
    exchange_rate_set(currency="GBP", rate_to_zar="23.5")

    assert revenue_track(source="other", amount="2", currency="GBP").amount_zar == Decimal("47")
    with pytest.raises(ValidationError):
        revenue_track(source="other", amount=1.5)  # a float is not money


def test_a_counted_purchase_records_pack_sale_revenue_once(django_capture_on_commit_callbacks):
    usd = ExchangeRate.objects.filter(currency="USD").order_by("-valid_from").first()  # seeded
    assert usd is not None
    buyer = UserFactory(balance="500")

    with django_capture_on_commit_callbacks(execute=True):
        purchase = purchase_create(user=buyer, option=OptionFactory(pack_price=Decimal("50")), packs=2)

    revenue = Revenue.objects.get()
    assert (revenue.source, revenue.currency, revenue.amount) == ("pack_sale", "USD", Decimal("100"))
    assert revenue.amount_zar == Decimal("100") * usd.rate_to_zar
    assert revenue.external_ref == f"purchase:{purchase.pk}"
    call_command("tokens_record_pack_sales")  # already there: nothing more
    assert Revenue.objects.count() == 1


def test_without_a_usd_rate_the_purchase_goes_through_and_the_revenue_is_recorded_later(
        django_capture_on_commit_callbacks, caplog):
    ExchangeRate.objects.filter(currency="USD").delete()
    buyer = UserFactory(balance="500")

    with django_capture_on_commit_callbacks(execute=True):
        purchase = purchase_create(user=buyer, option=OptionFactory(pack_price=Decimal("50")))

    assert purchase.pk and Revenue.objects.count() == 0
    assert "NOT recorded" in caplog.text
    exchange_rate_set(currency="USD", rate_to_zar="18.5")
    call_command("tokens_record_pack_sales")
    assert Revenue.objects.get().amount_zar == Decimal("925")
