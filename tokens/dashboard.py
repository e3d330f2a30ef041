"""What the buy-back dashboards show: the chart, and the treasury's truth.

The chart is drawn by ``backoffice.charts`` (a real time axis, orders close in time merged,
a padded price axis). The treasury figures put the tokens the records say are held (bought
minus burned) next to the AZR balance the chain reports; when the records claim more than the
treasury holds -- a local chain reset under an old database -- the page says so instead of
claiming the tokens. A chain that does not answer within a few seconds is "unavailable": the
page still renders.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum
from django.utils.safestring import SafeString

from backoffice.charts import buyback_chart
from common.money import ZERO
from tokens.models import BuyOrder

logger = logging.getLogger(__name__)

CHAIN_READ_TIMEOUT_SECONDS = 3.0
_reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="treasury-read")


def chart_svg(points: list[dict]) -> SafeString:
    """``points``: dicts with ``completed_at``, ``tokens_received``, ``price_per_token``, ``amount``."""
    return buyback_chart(points)


@dataclass(frozen=True)
class Treasury:
    bought: Decimal  # AZR received by completed orders (the records)
    burned: Decimal  # of which burned (a burn transaction recorded)
    on_chain: Decimal | None  # the treasury's AZR balance read from the chain; None: no answer
    chain_error: str = ""

    @property
    def held(self) -> Decimal:
        """What the records say the treasury holds."""
        return self.bought - self.burned

    @property
    def chain_available(self) -> bool:
        return self.on_chain is not None

    @property
    def shortfall(self) -> Decimal | None:
        """How much more the records claim than the chain holds (None when they agree or the
        chain did not answer)."""
        if self.on_chain is None or self.held <= self.on_chain:
            return None
        return self.held - self.on_chain


def recorded_tokens() -> tuple[Decimal, Decimal]:
    """(AZR bought, AZR burned) by completed orders: one aggregate query."""
    completed = Q(status=BuyOrder.Status.COMPLETED)
    totals = BuyOrder.objects.filter(completed).aggregate(
        bought=Sum("tokens_received"), burned=Sum("tokens_received", filter=~Q(burn_tx_hash="")))
    return totals["bought"] or ZERO, totals["burned"] or ZERO


def _read_azr_balance() -> Decimal:
    from tokens import services

    with services.chain_lock:  # the embedded chain is not thread-safe
        return services.chain_client().balances().azr


def chain_azr_balance(timeout: float = CHAIN_READ_TIMEOUT_SECONDS) -> tuple[Decimal | None, str]:
    """The treasury's AZR on chain, or (None, why) when the chain does not answer in time."""
    future = _reader.submit(_read_azr_balance)
    try:
        return future.result(timeout=timeout), ""
    except FutureTimeout:
        return None, f"no answer within {timeout:g} s"
    except Exception as exc:  # any failure of the node or its configuration: say so, never crash the page
        logger.warning("treasury balance unavailable: %s", exc)
        return None, f"{type(exc).__name__}: {str(exc)[:160]}"


def treasury(timeout: float = CHAIN_READ_TIMEOUT_SECONDS) -> Treasury:
    bought, burned = recorded_tokens()
    on_chain, error = chain_azr_balance(timeout)
    return Treasury(bought=bought, burned=burned, on_chain=on_chain, chain_error=error)
