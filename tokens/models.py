"""Revenue, exchange rates, buy-order settings (with their audit history) and buy-orders.

Amounts are ZAR ``Decimal`` in ``DECIMAL(20,8)`` columns, token quantities likewise (the
exact on-chain quantity of a buy is kept as base units too). Invariants live in the
database: positive amounts (a revenue reversal is the one negative record, and only it),
known choices, one settings row, one revenue record per (source, external reference), at
most one reversal per record, one buy-order per transaction hash and per schedule period.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone
from simple_history.models import HistoricalRecords

from common.money import MoneyField


class Revenue(models.Model):
    class Source(models.TextChoices):
        COURSE_SALE = "course_sale", "Course sale"
        SUBSCRIPTION = "subscription", "Subscription"
        PACK_SALE = "pack_sale", "Pack sale"
        OTHER = "other", "Other"

    source = models.CharField(max_length=16, choices=Source.choices)
    amount = MoneyField(help_text="In `currency`.")
    currency = models.CharField(max_length=3, default="ZAR", help_text="ISO 4217 code.")
    rate_to_zar = MoneyField(default=Decimal(1), help_text="The rate used for the conversion (1 for ZAR).")
    amount_zar = MoneyField(help_text="The amount converted to ZAR when it was recorded.")
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)
    external_ref = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULL: no reference
    # A reversal (a refunded purchase's pack sale, money-lifecycle §2) is a negative record of
    # the same amounts that points at the record it reverses; every other record is positive.
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="reversal", help_text="The record this one reverses (a refund).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(reverses__isnull=True, amount__gt=0, amount_zar__gt=0)
                           | Q(reverses__isnull=False, amount__lt=0, amount_zar__lt=0)),
                name="revenue_sign_follows_reversal"),
            models.CheckConstraint(condition=Q(rate_to_zar__gt=0), name="revenue_rate_gt_0"),
            models.CheckConstraint(condition=Q(source__in=["course_sale", "subscription", "pack_sale", "other"]),
                                   name="revenue_source_known"),
            models.CheckConstraint(condition=Exact(Length("currency"), 3), name="revenue_currency_len_3"),
            models.UniqueConstraint(fields=["source", "external_ref"], condition=Q(external_ref__isnull=False),
                                    name="revenue_source_external_ref_unique"),
        ]

    def __str__(self) -> str:
        from common import display

        what = "reversal" if self.reverses_id else self.get_source_display()
        return f"{what} {display.money(self.amount, self.currency)} (= {display.money(self.amount_zar, 'ZAR')})"


class ExchangeRate(models.Model):
    """How many ZAR one unit of `currency` is worth. Rows are never edited: the newest wins."""

    currency = models.CharField(max_length=3)
    rate_to_zar = MoneyField()
    valid_from = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-valid_from", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(rate_to_zar__gt=0), name="exchange_rate_gt_0"),
            models.CheckConstraint(condition=Exact(Length("currency"), 3), name="exchange_rate_currency_len_3"),
        ]
        indexes = [models.Index(fields=["currency", "-valid_from", "-id"], name="exchange_rate_newest_idx")]

    def __str__(self) -> str:
        from common import display

        return f"1 {self.currency} = {display.tokens(self.rate_to_zar, 'ZAR')} (from {self.valid_from:%Y-%m-%d %H:%M})"


class BuyOrderConfig(models.Model):
    """The one settings row (pk 1). Changed only through `buy_order_config_update`."""

    class Disposition(models.TextChoices):
        HOLD = "hold", "Hold in the treasury"
        BURN = "burn", "Burn"

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    revenue_percentage = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.10"),
                                             help_text="A fraction: 0.10 is 10%.")
    execution_schedule = models.CharField(max_length=100, default="daily",
                                          help_text="daily, weekly, monthly or a 5-field cron expression.")
    timezone = models.CharField(max_length=64, default="UTC")
    min_buy_amount = MoneyField(default=Decimal(100))
    max_buy_amount = MoneyField(default=Decimal(1_000_000))
    max_slippage = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.01"),
                                       help_text="A fraction: 0.01 is 1%.")
    disposition = models.CharField(max_length=4, choices=Disposition.choices, default=Disposition.HOLD)
    enabled = models.BooleanField(default=True, help_text="The kill switch: off, nothing is bought.")
    # The price guard (see tokens.price_guard): the spot must be within max_price_deviation of
    # the TWAP over twap_window_seconds; each slice of a buy moves the price by at most max_price_impact.
    max_price_deviation = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.02"),
                                              help_text="Largest spot/TWAP deviation a buy accepts: 0.02 is 2%.")
    twap_window_seconds = models.PositiveIntegerField(default=1800, help_text="The TWAP's window, in seconds.")
    max_price_impact = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.01"),
                                           help_text="Largest price impact of one slice: 0.01 is 1%.")
    # --- The transaction layer: fees (gwei), the swap's deadline, replacement of stuck transactions.
    max_fee_per_gas = models.DecimalField(
        max_digits=12, decimal_places=3, default=Decimal(100),
        help_text="Gwei. The most a transaction pays per gas (EIP-1559 maxFeePerGas); when the base fee plus the "
                  "priority fee is above it, the buy defers.")
    priority_fee_per_gas = models.DecimalField(
        max_digits=12, decimal_places=3, default=Decimal(1),
        help_text="Gwei. The tip to the block producer (maxPriorityFeePerGas).")
    tx_deadline_seconds = models.PositiveIntegerField(
        default=600, help_text="The swap's deadline: the wall-clock time of signing + this many seconds.")
    replace_after_seconds = models.PositiveIntegerField(
        default=180, help_text="A transaction pending longer is sent again, same nonce, fees +12.5%.")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()  # the audit trail: who changed what, before/after (admin: History)

    class Meta:
        verbose_name = "buy-order settings"
        verbose_name_plural = "buy-order settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="buy_order_config_singleton"),
            models.CheckConstraint(condition=Q(revenue_percentage__gt=0, revenue_percentage__lte=1),
                                   name="buy_order_config_percentage_range"),
            models.CheckConstraint(condition=Q(max_slippage__gte=0, max_slippage__lt=1),
                                   name="buy_order_config_slippage_range"),
            models.CheckConstraint(condition=Q(min_buy_amount__gt=0, min_buy_amount__lte=models.F("max_buy_amount")),
                                   name="buy_order_config_min_le_max"),
            models.CheckConstraint(condition=Q(disposition__in=["hold", "burn"]),
                                   name="buy_order_config_disposition_known"),
            models.CheckConstraint(condition=Q(max_price_deviation__gt=0, max_price_deviation__lt=1),
                                   name="buy_order_config_deviation_range"),
            models.CheckConstraint(condition=Q(max_price_impact__gt=0, max_price_impact__lt=1),
                                   name="buy_order_config_impact_range"),
            models.CheckConstraint(condition=Q(twap_window_seconds__gte=60, twap_window_seconds__lte=86400),
                                   name="buy_order_config_twap_window_range"),
            models.CheckConstraint(condition=Q(max_fee_per_gas__gt=0, priority_fee_per_gas__gte=0,
                                             priority_fee_per_gas__lte=models.F("max_fee_per_gas")),
                                   name="buy_order_config_fees_valid"),
            models.CheckConstraint(condition=Q(tx_deadline_seconds__gt=0, replace_after_seconds__gt=0),
                                   name="buy_order_config_tx_times_gt_0"),
        ]

    def __str__(self) -> str:
        return "Buy-order settings"


class BuyOrderConfigChange(models.Model):
    """One change of the settings: who, when, and each field's old and new value."""

    config = models.ForeignKey(BuyOrderConfig, on_delete=models.PROTECT, related_name="changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    changes = models.JSONField(help_text='{"field": {"old": "...", "new": "..."}}')

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.changed_at:%Y-%m-%d %H:%M} {', '.join(self.changes)}"


class BuyOrder(models.Model):
    """A buy: the order, or one slice of it (``parent`` set) when it was split for price impact.

    A split order's row reserves the whole amount while its slices run; when the last one is
    settled its figures are the sum of its completed slices (the rest is released). Slices are
    ``planned``, claimed one at a time (``pending``), then ``completed``, ``failed``, or
    ``cancelled`` when the order stopped before them.
    """

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        MANUAL = "manual", "Manual"

    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=9, choices=Trigger.choices)
    period_key = models.CharField(max_length=100, null=True, blank=True,  # noqa: DJ001 - NULL: manual
                                  help_text="The schedule period of a scheduled run (unique).")
    amount = MoneyField(help_text="ZAR revenue used (reserved while pending).")
    quoted_price = MoneyField(help_text="ZAR per AZR the order was sized with.")
    expected_tokens = MoneyField()
    min_tokens = MoneyField(help_text="Minimum accepted output: expected × (1 − max slippage).")
    max_slippage = models.DecimalField(max_digits=5, decimal_places=4)
    disposition = models.CharField(max_length=4, choices=BuyOrderConfig.Disposition.choices)
    tokens_received = MoneyField(null=True, blank=True, help_text="From the receipt (8 places, rounded down).")
    tokens_received_exact = models.CharField(max_length=100, blank=True,
                                             help_text="The exact quantity received (all 18 decimals).")
    price_per_token = MoneyField(null=True, blank=True, help_text="Revenue used / tokens received.")
    tx_hash = models.CharField(max_length=66, null=True, blank=True)  # noqa: DJ001 - NULL: not signed yet
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    gas_used = models.PositiveBigIntegerField(null=True, blank=True)
    burn_tx_hash = models.CharField(max_length=66, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    executed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The price guard: the pool's spot and the TWAP when the order (or slice) was sized.
    spot_price = models.DecimalField(max_digits=40, decimal_places=18, null=True, blank=True)
    twap_price = models.DecimalField(max_digits=40, decimal_places=18, null=True, blank=True)
    warning = models.TextField(blank=True, help_text="E.g. the price moved more than expected after a swap.")
    # Split orders: the order has slice_count; each slice has its parent, index and due time.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="slices")
    slice_index = models.PositiveSmallIntegerField(null=True, blank=True)
    slice_count = models.PositiveSmallIntegerField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="A slice runs at the first tick after this.")
    price_impact = models.DecimalField(max_digits=12, decimal_places=10, null=True, blank=True,
                                       help_text="The planned price impact of this swap.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="buy_order_amount_gt_0"),
            models.CheckConstraint(condition=Q(quoted_price__gt=0), name="buy_order_quoted_price_gt_0"),
            models.CheckConstraint(condition=Q(status__in=["planned", "pending", "completed", "failed", "cancelled"]),
                                   name="buy_order_status_known"),
            models.CheckConstraint(condition=Q(trigger__in=["scheduled", "manual"]), name="buy_order_trigger_known"),
            models.CheckConstraint(
                condition=~Q(status="completed")
                | (Q(tokens_received__gt=0, price_per_token__isnull=False)
                   & (Q(tx_hash__isnull=False) | Q(slice_count__isnull=False))),
                name="buy_order_completed_has_receipt"),
            models.CheckConstraint(condition=Q(parent__isnull=True, slice_index__isnull=True)
                                   | Q(parent__isnull=False, slice_index__isnull=False, slice_count__isnull=True),
                                   name="buy_order_slice_has_parent_and_index"),
            models.CheckConstraint(condition=~Q(status__in=["planned", "cancelled"]) | Q(parent__isnull=False),
                                   name="buy_order_planned_only_slices"),
            models.UniqueConstraint(fields=["parent", "slice_index"], condition=Q(parent__isnull=False),
                                    name="buy_order_slice_unique"),
            models.CheckConstraint(condition=Q(trigger="scheduled") | Q(period_key__isnull=True),
                                   name="buy_order_period_key_only_scheduled"),
            models.UniqueConstraint(fields=["tx_hash"], condition=Q(tx_hash__isnull=False),
                                    name="buy_order_tx_hash_unique"),
            models.UniqueConstraint(fields=["period_key"], condition=Q(period_key__isnull=False),
                                    name="buy_order_period_key_unique"),
        ]
        indexes = [
            # The history's sort (newest first, id breaks ties): keyset pages walk these.
            models.Index(fields=["created_at", "id"], name="buy_order_sort_idx"),
            models.Index(fields=["status", "created_at", "id"], name="buy_order_status_sort_idx"),
            # The dashboard's chart: the latest completed orders.
            models.Index(fields=["status", "completed_at", "id"], name="buy_order_status_done_idx"),
        ]

    def __str__(self) -> str:
        from common import display

        what = f"#{self.parent_id} slice {self.slice_index + 1}" if self.parent_id else f"#{self.pk}"
        return f"Buy-order {what} {display.money(self.amount, 'ZAR')} ({self.get_status_display()})"


class BuyOrderDeferral(models.Model):
    """A buy (or a slice) the price guard did not make: why, with both prices. Nothing was spent;
    the next tick tries again (a scheduled period still buys at most once)."""

    class Code(models.TextChoices):
        PRICE_DEVIATION = "price_deviation", "Spot too far from the TWAP"
        TWAP_UNAVAILABLE = "twap_unavailable", "Not enough price observations"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    trigger = models.CharField(max_length=9, choices=BuyOrder.Trigger.choices)
    period_key = models.CharField(max_length=100, blank=True)
    slice_of = models.ForeignKey(BuyOrder, null=True, blank=True, on_delete=models.PROTECT, related_name="deferrals")
    code = models.CharField(max_length=20, choices=Code.choices)
    reason = models.TextField()
    spot_price = models.DecimalField(max_digits=40, decimal_places=18, null=True, blank=True)
    twap_price = models.DecimalField(max_digits=40, decimal_places=18, null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} deferred ({self.code})"


class PriceObservation(models.Model):
    """A reading of a V2 pair's oracle at one block: the cumulative price of AZR in the base
    token (UQ112x112 x seconds, as the pair would have it at that block) and the reserves.

    Keyed by (chain id, pair, block): a pair at the same address on another network never mixes
    with this one's history (a restarted chain with the same id is caught by
    :func:`tokens.observations.price_observe`, which discards a history the new reading contradicts)."""

    chain_id = models.PositiveBigIntegerField(default=0,
                                           help_text="The network's chain id (0: recorded before it was kept).")
    pair = models.CharField(max_length=42)
    block_number = models.PositiveBigIntegerField()
    block_timestamp = models.PositiveBigIntegerField()
    price_cumulative = models.DecimalField(max_digits=80, decimal_places=0)
    reserve_base = models.DecimalField(max_digits=80, decimal_places=0)
    reserve_azr = models.DecimalField(max_digits=80, decimal_places=0)
    observed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-block_timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "pair", "block_number"], name="price_observation_block_unique"),
        ]
        indexes = [models.Index(fields=["chain_id", "pair", "-block_timestamp"], name="price_observation_time_idx"),
                   models.Index(fields=["observed_at"], name="price_observation_age_idx")]

    def __str__(self) -> str:
        return f"{self.pair[:10]}… block {self.block_number}"


class BuyOrderTotals(models.Model):
    """Running totals of the settled buy-orders (one row, pk 1), so the metrics never scan the
    history. Written only by `tokens.totals.buy_order_totals_apply`, in the same transaction
    as an order's status change; `tokens.totals.buy_order_totals_problems` proves them against
    the rows (`manage.py check_ledger`) and `buy_order_totals_rebuild` recomputes them.
    Pending orders are not in here: they are few, and counted live (an index on the status)."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    completed_count = models.PositiveBigIntegerField(default=0)
    failed_count = models.PositiveBigIntegerField(default=0)
    tokens_acquired = models.DecimalField(max_digits=38, decimal_places=8, default=Decimal(0),
                                          help_text="Σ tokens received by completed orders.")
    rand_spent = models.DecimalField(max_digits=38, decimal_places=8, default=Decimal(0),
                                     help_text="Σ ZAR used by completed orders.")
    # The revenue's running total (every Revenue row, reversals included: Σ amount_zar and how
    # many rows), moved by `tokens.totals.revenue_totals_apply` in each insert's transaction.
    revenue_zar = models.DecimalField(max_digits=38, decimal_places=8, default=Decimal(0),
                                      help_text="Σ amount_zar of every revenue row (reversals are negative).")
    revenue_count = models.PositiveBigIntegerField(default=0, help_text="How many revenue rows.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "buy-order running totals"
        verbose_name_plural = "buy-order running totals"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="buy_order_totals_singleton"),
            models.CheckConstraint(condition=Q(tokens_acquired__gte=0, rand_spent__gte=0),
                                   name="buy_order_totals_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.completed_count} completed, {self.failed_count} failed"


class PackSaleSweepMark(models.Model):
    """How far the pack-sale sweeper (`tokens.revenue.pack_sales_sweep`) never needs to look
    again (one row, pk 1): every counted purchase with ``id <= mark`` is recorded or refunded.

    The mark moves in two steps, so that a purchase committing late with a lower id is never
    skipped: a sweep notes a *candidate* (the highest purchase id then, with the database's
    ``pg_snapshot_xmax`` at that moment), and a later sweep moves the mark up to it only once
    every transaction that was running then has ended (``pg_snapshot_xmin`` of a new snapshot
    has passed the noted xmax) and the candidate is older than the sweeper's grace period --
    then no purchase at or below it can still appear -- and none at or below it is missing."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    mark = models.PositiveBigIntegerField(default=0, help_text="Every counted purchase up to this id is done.")
    candidate = models.PositiveBigIntegerField(null=True, blank=True,
                                               help_text="The highest purchase id when it was noted.")
    candidate_xmax = models.PositiveBigIntegerField(null=True, blank=True,
                                                    help_text="pg_snapshot_xmax when the candidate was noted.")
    candidate_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "pack-sale sweep mark"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="pack_sale_sweep_mark_singleton")]

    def __str__(self) -> str:
        return f"pack sales checked up to purchase {self.mark}"
# --- The transaction layer: one nonce counter per sender, every signed transaction -----------------


class ChainSender(models.Model):
    """A signing address on one chain. Its row is locked (``SELECT ... FOR UPDATE``) while a nonce
    is taken and the signed transaction recorded, so processes and machines never share a nonce."""

    chain_id = models.PositiveBigIntegerField()
    address = models.CharField(max_length=42, help_text="Checksummed.")
    next_nonce = models.PositiveBigIntegerField(default=0, help_text="The nonce the next transaction takes, at least.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain_id", "address"], name="chain_sender_unique")]

    def __str__(self) -> str:
        return f"{self.address} on chain {self.chain_id} (next nonce {self.next_nonce})"


class ChainTransaction(models.Model):
    """A transaction signed for a sender: recorded (committed) before it is broadcast.

    A replacement (same nonce, higher fees) is a new row, ``attempt`` + 1, and the row it replaces
    points at it (``replaced_by``). Of one nonce's rows at most one is ever mined; the others are
    ``dropped`` when it is.
    """

    class Status(models.TextChoices):
        SIGNED = "signed", "Signed, not broadcast yet"
        SENT = "sent", "Sent, pending"
        MINED = "mined", "Mined"
        REVERTED = "reverted", "Mined, reverted"
        DROPPED = "dropped", "Dropped (another transaction took its nonce)"
        SEND_FAILED = "send_failed", "Refused by the node"

    class Purpose(models.TextChoices):
        APPROVE = "approve", "Approve"
        SWAP = "swap", "Swap"
        BURN = "burn", "Burn"
        CANCEL = "cancel", "Cancel (took an expired swap's nonce)"
        OTHER = "other", "Other"

    OPEN_STATUSES = (Status.SIGNED, Status.SENT)

    sender = models.ForeignKey(ChainSender, on_delete=models.PROTECT, related_name="transactions")
    nonce = models.PositiveBigIntegerField()
    attempt = models.PositiveSmallIntegerField(default=0, help_text="0 the first, 1+ its replacements.")
    tx_hash = models.CharField(max_length=66, unique=True)
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.OTHER)
    buy_order = models.ForeignKey(BuyOrder, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="chain_transactions")
    to_address = models.CharField(max_length=42)
    data = models.TextField(help_text="The call data (hex).")
    value = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    gas_limit = models.PositiveBigIntegerField()
    max_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0, help_text="Wei.")
    max_priority_fee_per_gas = models.DecimalField(max_digits=40, decimal_places=0, help_text="Wei.")
    raw_transaction = models.TextField(help_text="The signed transaction (hex), to broadcast again.")
    status = models.CharField(max_length=11, choices=Status.choices, default=Status.SIGNED)
    error = models.TextField(blank=True)
    replaced_by = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="replaces")
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sender", "nonce", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["sender", "nonce", "attempt"], name="chain_tx_nonce_attempt_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["signed", "sent", "mined", "reverted", "dropped", "send_failed"]),
                name="chain_tx_status_known"),
            models.CheckConstraint(condition=Q(max_priority_fee_per_gas__lte=models.F("max_fee_per_gas")),
                                   name="chain_tx_tip_le_max_fee"),
        ]
        indexes = [models.Index(fields=["status", "sent_at"], name="chain_tx_status_sent_idx")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.tx_hash} (nonce {self.nonce}, {self.status})"


class BuyOrderDashboard(BuyOrder):
    """A proxy so that the admin index links to the buy-back dashboard."""

    class Meta:
        proxy = True
        verbose_name = "buy-back dashboard"
        verbose_name_plural = "buy-back dashboard"
