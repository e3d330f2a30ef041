"""Signal receivers of the tokens app: thin, connected in `TokensConfig.ready()`."""

from tokens.revenue import revenue_record_pack_sale, revenue_record_pack_sales


def record_pack_sale_revenue(sender, *, purchase, **kwargs):
    """A counted purchase of packs is `pack_sale` revenue (bonus purchases send no signal)."""
    revenue_record_pack_sale(purchase=purchase)


def record_pack_sales_revenue(sender, *, purchases, **kwargs):
    """A batch of counted purchases (the legacy import): their revenue in one go."""
    revenue_record_pack_sales(purchases=purchases)


def reverse_pack_sale_revenue(sender, *, purchase, refund, **kwargs):
    """A refunded purchase's pack-sale revenue is reversed by a task (its own transaction,
    retried; exactly once by the reversal's unique keys)."""
    from tokens.tasks import pack_sale_reverse

    pack_sale_reverse.delay_on_commit(refund.pk)


def refund_preview_part(sender, *, purchase, **kwargs):
    """The revenue reversal a refund of `purchase` makes, for the refund's confirmation page."""
    from tokens.selectors import pack_sale_reversal_preview

    return {"revenue": pack_sale_reversal_preview(purchase=purchase)}
