"""The public service names of the tokens app (the README's "Python API"), kept in one importable place.

The code lives in:

- :mod:`tokens.revenue` -- revenue, exchange rates, pack-sale revenue and its reversals;
- :mod:`tokens.settings_schedule` -- the buy-order settings and the beat schedule;
- :mod:`tokens.buy_orders` -- run, swap, complete/fail, reconcile, preview;
- :mod:`tokens.chain.runtime` -- the process's chain client, lock and retries.

Import from here or from those modules; patch (in tests) the module that holds the name.
"""

from tokens.buy_orders import (
    BuyOrderResult,
    buy_order_execute,
    buy_order_preview,
    buy_order_reconcile,
    buy_order_reconcile_stale,
    buy_order_run,
    buy_order_run_scheduled,
)
from tokens.chain.runtime import chain_client, chain_client_set, chain_lock
from tokens.revenue import (
    BASE_CURRENCY,
    exchange_rate_set,
    pack_sale_reversals_sweep,
    revenue_record_pack_sale,
    revenue_record_pack_sales,
    revenue_reverse_pack_sale,
    revenue_track,
    revenue_track_with_status,
)
from tokens.settings_schedule import (
    CONFIG_FIELDS,
    PERIODIC_TASK,
    PERIODIC_TASK_NAME,
    buy_order_config_update,
    buy_order_schedule_sync,
)

__all__ = [
    "BASE_CURRENCY",
    "CONFIG_FIELDS",
    "PERIODIC_TASK",
    "PERIODIC_TASK_NAME",
    "BuyOrderResult",
    "buy_order_config_update",
    "buy_order_execute",
    "buy_order_preview",
    "buy_order_reconcile",
    "buy_order_reconcile_stale",
    "buy_order_run",
    "buy_order_run_scheduled",
    "buy_order_schedule_sync",
    "chain_client",
    "chain_client_set",
    "chain_lock",
    "exchange_rate_set",
    "pack_sale_reversals_sweep",
    "revenue_record_pack_sale",
    "revenue_record_pack_sales",
    "revenue_reverse_pack_sale",
    "revenue_track",
    "revenue_track_with_status",
]
