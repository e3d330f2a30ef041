"""`manage.py chain_reconcile [--notice var/chain-reset.json]`: which completed buy-orders of the
database the chain does not have (their transaction hash has no receipt), and how many tokens
they claim against what the treasury holds. `make run` runs it after the local chain was
started afresh; the result is added to the reset notice (`missing_buy_orders`, `missing_tokens`,
`treasury_azr`), which says what the database claims that the chain no longer has."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tokens import services
from tokens.chain import ChainError
from tokens.models import BuyOrder


class Command(BaseCommand):
    help = "Report completed buy-orders whose transaction the chain does not have (after a chain reset)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--notice", type=Path, default=None,
                            help="the node's reset notice (chain-reset.json) to add the result to")

    def handle(self, *args, notice: Path | None = None, **options) -> None:
        try:
            client = services.chain_client()
            treasury_azr = client.balances().azr
        except ChainError as exc:
            raise CommandError(f"the chain does not answer: {exc}") from None
        orders = (BuyOrder.objects.filter(status=BuyOrder.Status.COMPLETED).exclude(tx_hash=None)
                  .order_by("id").values_list("id", "tx_hash", "tokens_received"))
        missing: list[int] = []
        missing_tokens = Decimal(0)
        checked = 0
        for order_id, tx_hash, tokens in orders.iterator():
            checked += 1
            try:
                found = client.receipt_for(tx_hash) is not None
            except ChainError:
                found = True  # the chain knows it (it reverted there): not a lost transaction
            if not found:
                missing.append(order_id)
                missing_tokens += tokens or 0
        if missing:
            self.stderr.write(self.style.ERROR(
                f"chain_reconcile: {len(missing)} of {checked} completed buy-orders are NOT on this chain "
                f"({missing_tokens:f} AZR recorded; the treasury holds {treasury_azr:f} AZR). "
                f"Buy-order ids: {_short(missing)}"))
        else:
            self.stdout.write(f"chain_reconcile: the chain has all {checked} completed buy-orders "
                              f"(treasury: {treasury_azr:f} AZR)")
        if notice is not None and notice.exists():
            data = json.loads(notice.read_text(encoding="utf-8"))
            data.update({"checked_at": timezone.now().isoformat(), "missing_buy_orders": missing,
                         "missing_tokens": f"{missing_tokens:f}", "treasury_azr": f"{treasury_azr:f}"})
            temporary = notice.with_name(f".{notice.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, notice)


def _short(ids: list[int], limit: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")
