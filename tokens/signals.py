from django.dispatch import Signal

# Sent after the commit of every buy-order that became `completed`, with `buy_order=<BuyOrder>`.
# For integrations (e.g. a token holders' leaderboard); receivers' errors are logged, not raised.
buy_order_completed = Signal()
