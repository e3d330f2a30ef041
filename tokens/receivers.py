"""Signal receivers of the tokens app: thin, connected in `TokensConfig.ready()`."""

# Purchase ids per task message for a batch (the legacy import).
TASK_BATCH = 500


def record_pack_sale_revenue(sender, *, purchase, **kwargs):
    """A counted purchase of packs is `pack_sale` revenue: recorded by a task enqueued when the
    transaction commits (retried; the beat sweeper records it if the message is lost)."""
    from tokens.tasks import pack_sales_record

    pack_sales_record.delay_on_commit([purchase.pk])


def record_pack_sales_revenue(sender, *, purchases, **kwargs):
    """A batch of counted purchases (the legacy import): one task per `TASK_BATCH` of them."""
    from tokens.tasks import pack_sales_record

    ids = [purchase.pk for purchase in purchases]
    for i in range(0, len(ids), TASK_BATCH):
        pack_sales_record.delay_on_commit(ids[i:i + TASK_BATCH])


def reverse_pack_sale_revenue(sender, *, purchase, refund, **kwargs):
    """A refunded purchase's pack-sale revenue is reversed by a task (its own transaction,
    retried; exactly once by the reversal's unique keys)."""
    from tokens.tasks import pack_sale_reverse

    pack_sale_reverse.delay_on_commit(refund.pk)


def refund_preview_part(sender, *, purchase, **kwargs):
    """The revenue reversal a refund of `purchase` makes, for the refund's confirmation page."""
    from tokens.selectors import pack_sale_reversal_preview

    return {"revenue": pack_sale_reversal_preview(purchase=purchase)}
