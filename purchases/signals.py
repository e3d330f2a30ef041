from django.dispatch import Signal

# Sent after the commit of every counted purchase (kind `regular` or `legacy`),
# with `purchase=<Purchase>`. Never for `bonus` auto-purchases.
purchase_completed = Signal()
