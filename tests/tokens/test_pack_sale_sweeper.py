"""Pack-sale revenue cannot be lost: a task enqueued on commit records it, a beat sweeper
records what a lost task left behind, exactly once, and refunds stay consistent with it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app as celery_app
from purchases.models import Purchase
from purchases.services import purchase_create, purchase_refund
from purchases.signals import purchases_completed_bulk
from tests.concurrency import run_concurrently
from tests.factories import OptionFactory, UserFactory
from tokens.defaults import PACK_SALES_SWEEP_NAME, PACK_SALES_SWEEP_TASK
from tokens.models import Revenue
from tokens.refs import pack_sale_ref, refund_ref
from tokens.revenue import pack_sale_reversals_sweep, pack_sales_missing, pack_sales_record, pack_sales_sweep
from tokens.tasks import pack_sales_sweep as pack_sales_sweep_task

D = Decimal


def buy(price="50", *, age_minutes=0, run_tasks=False, capture=None) -> Purchase:
    """A counted purchase; its on-commit task runs only with `run_tasks` (else: a lost message)."""
    buyer = UserFactory(balance=price)
    if run_tasks:
        with capture(execute=True):
            p = purchase_create(user=buyer, option=OptionFactory(pack_price=D(price)))
    else:
        p = purchase_create(user=buyer, option=OptionFactory(pack_price=D(price)))
    if age_minutes:
        Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(minutes=age_minutes))
    return p


def sales(p) -> list[Revenue]:
    return list(Revenue.objects.filter(source="pack_sale", external_ref=pack_sale_ref(p.pk)))


@pytest.mark.django_db
def test_the_reference_has_one_builder_in_python_and_in_sql():
    assert pack_sale_ref(42) == "purchase:42" and refund_ref("7") == "refund:7"
    p = buy(age_minutes=10)
    assert pack_sales_missing() == [p.pk]  # the SQL form of the same reference
    Revenue.objects.create(source="pack_sale", amount=D("50"), currency="USD", amount_zar=D("900"),
                           external_ref=f"purchase:{p.pk}")
    assert pack_sales_missing() == []


@pytest.mark.django_db
def test_the_purchase_task_records_the_revenue_on_commit(django_capture_on_commit_callbacks):
    p = buy(run_tasks=True, capture=django_capture_on_commit_callbacks)
    [sale] = sales(p)
    assert (sale.amount, sale.currency, sale.amount_zar, sale.recorded_at) == (D("50"), "USD", D("900"),
                                                                              p.created_at)


@pytest.mark.django_db
def test_a_lost_task_is_recorded_by_the_sweeper_once_old_enough():
    p = buy()  # the task never ran
    assert sales(p) == []
    assert pack_sales_sweep(older_than_minutes=5) == 0  # too recent: its task may still be queued
    Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(minutes=6))

    assert pack_sales_sweep_task.delay().get() == 1
    assert pack_sales_sweep(older_than_minutes=5) == 0
    [sale] = sales(p)
    assert sale.amount_zar == D("900")


@pytest.mark.django_db
def test_a_deleted_revenue_row_is_recorded_again_once(django_capture_on_commit_callbacks):
    p = buy(run_tasks=True, capture=django_capture_on_commit_callbacks)
    Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(minutes=30))
    Revenue.objects.filter(external_ref=pack_sale_ref(p.pk)).delete()

    assert pack_sales_sweep() == 1
    assert pack_sales_sweep() == 0
    assert pack_sales_record(purchase_ids=[p.pk]) == 0  # a late task finds it recorded
    assert len(sales(p)) == 1


@pytest.mark.django_db
def test_the_sweeper_works_in_bounded_batches():
    bought = [buy(price=str(10 + i), age_minutes=10) for i in range(7)]
    assert pack_sales_sweep(limit=3) == 3
    assert pack_sales_missing(limit=100) == [p.pk for p in bought[3:]]
    assert pack_sales_sweep(limit=100) == 4
    total = Revenue.objects.filter(source="pack_sale").aggregate(s=Sum("amount"))["s"]
    assert total == sum(D(10 + i) for i in range(7))


@pytest.mark.django_db
def test_no_usd_rate_then_the_sweeper_records_it_when_there_is_one():
    from tokens.models import ExchangeRate
    from tokens.services import exchange_rate_set

    ExchangeRate.objects.filter(currency="USD").delete()
    p = buy(age_minutes=10)
    assert pack_sales_sweep() == 0 and sales(p) == []  # logged, nothing written, the purchase unaffected
    exchange_rate_set(currency="USD", rate_to_zar="19.00")
    assert pack_sales_sweep() == 1
    assert sales(p)[0].amount_zar == D("950")


@pytest.mark.django_db
def test_the_bulk_signal_enqueues_tasks_that_record_each_purchase(django_capture_on_commit_callbacks):
    bought = [buy(price="20") for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        purchases_completed_bulk.send(sender=Purchase, purchases=bought)
    assert all(len(sales(p)) == 1 for p in bought)


@pytest.mark.django_db
def test_a_purchase_refunded_before_its_revenue_was_recorded_never_gets_any(django_capture_on_commit_callbacks):
    p = buy(age_minutes=10)  # its task was lost
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=p)
    # Nothing to reverse, and the sweeper and a late task both skip it: the pair nets to nothing.
    assert pack_sales_sweep(older_than_minutes=0) == 0
    assert pack_sales_record(purchase_ids=[p.pk]) == 0
    assert pack_sale_reversals_sweep(older_than_minutes=0) == 0
    assert Revenue.objects.filter(external_ref__in=[pack_sale_ref(p.pk), refund_ref(refund.pk)]).count() == 0


@pytest.mark.django_db
def test_a_recorded_then_refunded_purchase_is_reversed_not_recorded_again(django_capture_on_commit_callbacks):
    p = buy(run_tasks=True, capture=django_capture_on_commit_callbacks)
    purchase_refund(purchase=p)  # its reversal message is lost
    Purchase.objects.filter(pk=p.pk).update(created_at=timezone.now() - timedelta(minutes=30))

    assert pack_sales_sweep(older_than_minutes=0) == 0
    assert pack_sale_reversals_sweep(older_than_minutes=0) == 1
    net = Revenue.objects.filter(source="pack_sale").aggregate(s=Sum("amount_zar"))["s"]
    assert net == 0 and Revenue.objects.filter(source="pack_sale").count() == 2


@pytest.mark.django_db
def test_the_repair_command_uses_the_sweeper_functions_over_every_purchase(capsys):
    fresh = buy()  # too recent for the beat sweeper, not for the operator's command
    old = buy(age_minutes=60)
    call_command("tokens_record_pack_sales")
    assert len(sales(fresh)) == len(sales(old)) == 1
    assert "2 purchase(s) without pack-sale revenue; 2 recorded now" in capsys.readouterr().out
    call_command("tokens_record_pack_sales")
    assert "0 purchase(s) without" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_sweeper_is_a_seeded_beat_task():
    row = PeriodicTask.objects.get(name=PACK_SALES_SWEEP_NAME)
    assert row.task == PACK_SALES_SWEEP_TASK and row.enabled and row.interval.every == 5
    assert PACK_SALES_SWEEP_TASK in celery_app.tasks


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_task_and_the_sweeper_racing_record_one_row():
    bought = [buy(price="30", age_minutes=10) for _ in range(5)]
    ids = [p.pk for p in bought]

    results, errors = run_concurrently(lambda which: pack_sales_sweep(older_than_minutes=5) if which == "sweep"
                                       else pack_sales_record(purchase_ids=ids),
                                       [("sweep",), ("task",), ("task",), ("sweep",)])

    assert errors == []
    assert all(len(sales(p)) == 1 for p in bought)
    assert Revenue.objects.filter(source="pack_sale").count() == 5
