"""Celery tasks of the tokens app: thin."""

from celery import shared_task
from django.conf import settings

from tokens.buy_orders import buy_order_run_scheduled
from tokens.settings_schedule import PERIODIC_TASK


@shared_task(name=PERIODIC_TASK, acks_late=True, ignore_result=False)
def buy_order_scheduled() -> dict:
    """The beat task: this period's buy-order (at most one per period, safe to run twice)."""
    result = buy_order_run_scheduled()
    return {key: (str(value) if value is not None and not isinstance(value, bool | int) else value)
            for key, value in result.as_dict().items()}


@shared_task(name="tokens.pack_sale_reverse", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)
def pack_sale_reverse(refund_id: int) -> int | None:
    """Reverse a refunded purchase's pack-sale revenue (idempotent)."""
    from tokens.revenue import revenue_reverse_pack_sale

    record = revenue_reverse_pack_sale(refund_id=refund_id)
    return record.pk if record else None


@shared_task(name="tokens.pack_sale_reversals_sweep", acks_late=True)
def pack_sale_reversals_sweep() -> int:
    """The beat task: reversals whose message was lost."""
    from tokens.revenue import pack_sale_reversals_sweep as sweep

    return sweep()


@shared_task(name="tokens.price_tick", acks_late=True)
def price_tick() -> dict:
    """The beat task every minute: a price observation (the TWAP's), then the due buy slices and
    a retry of a deferred scheduled buy. One failing step does not stop the other."""
    import logging

    from tokens.buy_slices import buy_order_tick
    from tokens.observations import observations_prune, price_observe

    log = logging.getLogger(__name__)
    result: dict = {}
    try:
        result["observation"] = price_observe().pk
    except Exception:
        log.exception("tokens: the price observation failed")
        result["observation"] = None
    try:
        result["observations_pruned"] = observations_prune()
    except Exception:
        log.exception("tokens: pruning the price observations failed")
    result.update(buy_order_tick())
    return result


@shared_task(name="tokens.pack_sales_record", acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
             max_retries=5)
def pack_sales_record(purchase_ids: list[int]) -> int:
    """Record the pack-sale revenue of counted purchases (idempotent: one row per reference)."""
    from tokens.revenue import pack_sales_record as record

    return record(purchase_ids=purchase_ids)


@shared_task(name="tokens.pack_sales_sweep", acks_late=True)
def pack_sales_sweep() -> int:
    """The beat task: counted purchases still without their pack-sale revenue (a lost task)."""
    from tokens.revenue import pack_sales_sweep as sweep

    return sweep(older_than_minutes=getattr(settings, "TOKENS_PACK_SALE_SWEEP_AFTER_MINUTES", 5))


@shared_task(name="tokens.chain_tx_sweep", acks_late=True)
def chain_tx_sweep() -> dict:
    """The beat task (every minute): stuck transactions replaced, pending buy-orders reconciled."""
    from tokens.buy_orders import chain_sweep

    return chain_sweep()
