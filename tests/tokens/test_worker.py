"""The scheduled buy-order through a real Celery worker on Redis, end to end.

The worker runs in this process (solo pool, its own thread), because the embedded chain
lives in this process; chain calls are serialized by `tokens.chain.runtime.chain_lock`.
"""

from __future__ import annotations

import os

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connection
from django_celery_beat.models import PeriodicTask

from config.celery import app as project_app
from tokens.models import BuyOrder
from tokens.services import PERIODIC_TASK_NAME, buy_order_schedule_sync, revenue_track

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_app(monkeypatch):
    """A Celery app configured like the project's, on Redis and not eager; restored afterwards."""
    url = os.environ["TEST_REDIS_URL"]
    # Celery reads CELERY_BROKER_URL from the environment before its own broker_url (scripts/test.sh
    # exports memory:// for the eager tests): without this the "worker" would run on memory.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app = Celery("azr-worker-test")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False, task_ignore_result=False,
                    broker_connection_retry_on_startup=True,
                    # Our own queue: other test runs on the same Redis must not take our tasks.
                    task_default_queue=f"tokens-worker-test-{os.getpid()}")
    app.autodiscover_tasks(force=True)

    def close_connection(**kwargs):  # the worker thread's connection must not outlive the test
        connection.close()

    task_postrun.connect(close_connection, weak=False, dispatch_uid="tokens-test-close")
    try:
        yield app
    finally:
        task_postrun.disconnect(dispatch_uid="tokens-test-close")
        project_app.set_current()
        assert project_app.conf.task_always_eager  # the project's app was never touched


def test_the_scheduled_buy_runs_on_a_real_worker(redis_app, chain):
    revenue_track(source="course_sale", amount="5000")
    revenue_track(source="subscription", amount="2000")
    # What beat would send (a transactional test before this one may have flushed the seeded row).
    task_name = buy_order_schedule_sync().task
    assert PeriodicTask.objects.get(name=PERIODIC_TASK_NAME).task == task_name

    with start_worker(redis_app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30):
        first = redis_app.send_task(task_name).get(timeout=60)
        second = redis_app.send_task(task_name).get(timeout=60)  # the same period again

    assert first["success"] is True, first
    assert second["success"] is False and second["code"] == "already_ran"
    order = BuyOrder.objects.get()
    assert order.status == "completed" and order.trigger == "scheduled"
    assert order.amount == 700 and first["transaction_hash"] == order.tx_hash
    assert chain.w3.eth.get_transaction_receipt(order.tx_hash)["status"] == 1
