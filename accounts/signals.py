"""Signals of the accounts app."""

from django.dispatch import Signal

# Sent inside `member_sponsor_change`'s transaction, before the subtree moves, with `user` (the
# member about to move; its subtree is every member whose path starts with `user.path`). Apps
# that keep something computed from the current tree record what they need of the old one.
sponsor_changing = Signal()
