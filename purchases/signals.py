from django.dispatch import Signal

# Sent after the commit of every counted purchase (kind `regular` or `legacy`),
# with `purchase=<Purchase>`. Never for `bonus` auto-purchases.
purchase_completed = Signal()

# Sent after the commit of a batch of counted purchases written together
# (`purchases.services.purchase_grant_many`: the legacy import), with `purchases=[Purchase, …]`
# in id order — INSTEAD of `purchase_completed` for each, so receivers work per batch
# (mlm processes them in batches, tokens records their revenue in one go).
purchases_completed_bulk = Signal()

# Sent after the commit of a refund (`purchases.services.purchase_refund`), with
# `purchase=<Purchase>` and `refund=<Refund>`. `mlm` and `tokens` take back their part
# through it, each exactly once (their own marker rows), in their own transactions.
purchase_refunded = Signal()

# Sent (synchronously, outside any money transaction) to collect what a refund of
# `purchase=` takes back, for the admin's confirmation page and the refund API: each
# receiver returns a dict of its sections ({"bonuses": [...], "volumes": [...], ...}).
# `purchases` cannot import `mlm` or `tokens`; this is the seam (purchases.selectors.refund_preview).
purchase_refund_preview = Signal()
