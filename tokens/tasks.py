"""Celery tasks of the tokens app: thin."""

from celery import shared_task

from tokens.services import PERIODIC_TASK, buy_order_run_scheduled


@shared_task(name=PERIODIC_TASK, acks_late=True, ignore_result=False)
def buy_order_scheduled() -> dict:
    """The beat task: this period's buy-order (at most one per period, safe to run twice)."""
    result = buy_order_run_scheduled()
    return {key: (str(value) if value is not None and not isinstance(value, bool | int) else value)
            for key, value in result.as_dict().items()}
