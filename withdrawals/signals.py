from django.dispatch import Signal

# Sent after the commit of every withdrawal change (request, approve, paid, reject, cancel),
# with `withdrawal=<Withdrawal>` and `event=<WithdrawalEvent>` (its `status` says which change).
# The seam for other apps (e.g. an in-app notification centre); this app imports only accounts.
withdrawal_changed = Signal()
