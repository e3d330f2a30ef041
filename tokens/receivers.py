"""Signal receivers of the tokens app: thin, connected in `TokensConfig.ready()`."""

from tokens.services import revenue_record_pack_sale


def record_pack_sale_revenue(sender, *, purchase, **kwargs):
    """A counted purchase of packs is `pack_sale` revenue (bonus purchases send no signal)."""
    revenue_record_pack_sale(purchase=purchase)
