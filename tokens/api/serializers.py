from rest_framework import serializers

from common.api import MAX_OFFSET, ApiErrorSerializer
from common.fields import MoneyInputField, StrictDecimalField, StrictIntegerField, TextInputField
from tokens.models import BuyOrder, BuyOrderConfig, Revenue
from tokens.selectors import HISTORY_COUNT_CAP, HISTORY_MAX_LIMIT, HISTORY_MAX_OFFSET


class RevenueInputSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=Revenue.Source.choices)
    amount = MoneyInputField(help_text="> 0, at most 8 decimal places; a JSON number or a numeric string.")
    currency = TextInputField(min_length=3, max_length=3, default="ZAR",
                              help_text="ISO 4217; other than ZAR needs an exchange rate.")
    external_ref = TextInputField(max_length=200, required=False, allow_null=True, allow_blank=True,
                                  help_text="Your reference: the same (source, reference) is recorded once.")


class RevenueSerializer(serializers.ModelSerializer):
    class Meta:
        model = Revenue
        fields = ["id", "source", "amount", "currency", "rate_to_zar", "amount_zar", "recorded_at", "external_ref"]
        read_only_fields = fields


class ConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = BuyOrderConfig
        fields = ["revenue_percentage", "execution_schedule", "timezone", "min_buy_amount", "max_buy_amount",
                  "max_slippage", "disposition", "enabled", "max_price_deviation", "twap_window_seconds",
                  "max_price_impact",
                  "max_fee_per_gas", "priority_fee_per_gas", "tx_deadline_seconds", "replace_after_seconds",
                  "updated_at"]
        read_only_fields = fields


class ConfigUpdateSerializer(serializers.Serializer):
    revenue_percentage = StrictDecimalField(max_digits=5, decimal_places=4, required=False,
                                                  help_text="A fraction: 0.10 is 10% (0 < p <= 1).")
    execution_schedule = TextInputField(max_length=100, required=False,
                                        help_text="daily, weekly, monthly or a 5-field cron expression.")
    timezone = TextInputField(max_length=64, required=False)
    min_buy_amount = MoneyInputField(required=False)
    max_buy_amount = MoneyInputField(required=False)
    max_slippage = StrictDecimalField(max_digits=5, decimal_places=4, required=False,
                                            help_text="A fraction: 0.01 is 1% (0 <= s < 1).")
    disposition = serializers.ChoiceField(choices=BuyOrderConfig.Disposition.choices, required=False)
    enabled = serializers.BooleanField(required=False)
    max_price_deviation = StrictDecimalField(max_digits=5, decimal_places=4, required=False,
                                             help_text="Largest spot/TWAP deviation: 0.02 is 2% (0 < d < 1).")
    twap_window_seconds = StrictIntegerField(min_value=60, max_value=86400, required=False)
    max_price_impact = StrictDecimalField(max_digits=5, decimal_places=4, required=False,
                                          help_text="Largest price impact of one slice: 0.01 is 1% (0 < i < 1).")
    max_fee_per_gas = StrictDecimalField(max_digits=12, decimal_places=3, required=False,
                                         help_text="Gwei: the most a transaction pays per gas; above it the buy "
                                                   "defers.")
    priority_fee_per_gas = StrictDecimalField(max_digits=12, decimal_places=3, required=False,
                                              help_text="Gwei: the tip to the block producer.")
    tx_deadline_seconds = StrictIntegerField(required=False, min_value=30, max_value=86_400,
                                             help_text="The swap's deadline: wall clock at signing + this.")
    replace_after_seconds = StrictIntegerField(required=False, min_value=15, max_value=86_400,
                                               help_text="A transaction pending longer is replaced (fees +12.5%).")


class BuyOrderSerializer(serializers.ModelSerializer):
    executed_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = BuyOrder
        fields = ["id", "status", "trigger", "period_key", "amount", "quoted_price", "expected_tokens",
                  "min_tokens", "max_slippage", "disposition", "tokens_received", "tokens_received_exact",
                  "price_per_token", "tx_hash", "block_number", "gas_used", "burn_tx_hash", "attempts", "error",
                  "executed_by", "created_at", "completed_at", "spot_price", "twap_price", "warning",
                  "slice_count", "price_impact"]
        read_only_fields = fields


class HistoryFilterSerializer(serializers.Serializer):
    limit = StrictIntegerField(min_value=1, max_value=HISTORY_MAX_LIMIT, default=50)
    cursor = TextInputField(required=False, max_length=200, trim_whitespace=False,
                            help_text="The `next_cursor` of the page before: the next page, at any depth.")
    offset = StrictIntegerField(min_value=0, max_value=MAX_OFFSET, default=0,
                                help_text=f"At most {HISTORY_MAX_OFFSET:,} (a 400 `offset_too_deep` beyond): "
                                          "page deeper with `cursor`.")
    status = serializers.ChoiceField(choices=BuyOrder.Status.choices, required=False)
    date_from = serializers.DateField(required=False, help_text="Created on or after this day (UTC).")
    date_to = serializers.DateField(required=False, help_text="Created on or before this day (UTC).")


class HistorySerializer(serializers.Serializer):
    count = StrictIntegerField(help_text="The rows matching the filters (see `count_exact`).")
    count_exact = serializers.BooleanField(help_text="False: there are at least `count` rows (a date filter "
                                                     f"matching more than {HISTORY_COUNT_CAP:,}).")
    limit = StrictIntegerField()
    offset = StrictIntegerField()
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null on "
                                                                   "the last one. Opaque.")
    results = BuyOrderSerializer(many=True)


class MetricsSerializer(serializers.Serializer):
    total_revenue_tracked = StrictDecimalField(max_digits=30, decimal_places=8)
    total_tokens_acquired = StrictDecimalField(max_digits=30, decimal_places=8)
    total_rand_spent = StrictDecimalField(max_digits=30, decimal_places=8)
    average_price_per_token = StrictDecimalField(max_digits=30, decimal_places=8, allow_null=True)
    execution_count = StrictIntegerField()
    completed_count = StrictIntegerField()
    success_rate = StrictDecimalField(max_digits=5, decimal_places=4, allow_null=True)
    last_execution_time = serializers.DateTimeField(allow_null=True)
    slice_count = StrictIntegerField(help_text="Slices of split orders (their executions; not added to the totals).")
    slices_completed = StrictIntegerField()


class AvailableRevenueSerializer(serializers.Serializer):
    available_revenue = StrictDecimalField(max_digits=30, decimal_places=2)
    unspent_revenue = StrictDecimalField(max_digits=30, decimal_places=8)
    revenue_percentage = StrictDecimalField(max_digits=5, decimal_places=4)


class PreviewSliceSerializer(serializers.Serializer):
    index = StrictIntegerField()
    amount = StrictDecimalField(max_digits=30, decimal_places=8)
    expected_price = StrictDecimalField(max_digits=30, decimal_places=8)
    expected_tokens = StrictDecimalField(max_digits=30, decimal_places=8)
    min_tokens_out = StrictDecimalField(max_digits=30, decimal_places=8)
    price_impact = StrictDecimalField(max_digits=12, decimal_places=10)


class PreviewFeesSerializer(serializers.Serializer):
    """The fee figures a buy would use now, in gwei per gas."""

    base_fee = StrictDecimalField(max_digits=30, decimal_places=9, help_text="The latest block's base fee.")
    priority_fee = StrictDecimalField(max_digits=30, decimal_places=9, help_text="The tip (maxPriorityFeePerGas).")
    required = StrictDecimalField(max_digits=30, decimal_places=9,
                                  help_text="Base fee + priority fee: what the next block needs.")
    max_fee = StrictDecimalField(max_digits=30, decimal_places=9, allow_null=True,
                                 help_text="The maxFeePerGas the transaction would carry (2 x base fee + tip, at "
                                           "most the cap); null above the cap: nothing would be sent.")
    cap = StrictDecimalField(max_digits=30, decimal_places=9, allow_null=True,
                             help_text="The max_fee_per_gas setting.")
    above_cap = serializers.BooleanField(help_text="The fee needed is above the cap: the buy would defer.")


class PreviewSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    available_revenue = StrictDecimalField(max_digits=30, decimal_places=2)
    amount = StrictDecimalField(max_digits=30, decimal_places=8)
    min_buy_amount = StrictDecimalField(max_digits=30, decimal_places=8)
    max_buy_amount = StrictDecimalField(max_digits=30, decimal_places=8)
    price_per_token = StrictDecimalField(max_digits=30, decimal_places=8, allow_null=True)
    expected_tokens = StrictDecimalField(max_digits=30, decimal_places=8, allow_null=True)
    min_tokens_out = StrictDecimalField(max_digits=30, decimal_places=8, allow_null=True)
    max_slippage = StrictDecimalField(max_digits=5, decimal_places=4)
    disposition = serializers.CharField()
    spot_price = StrictDecimalField(max_digits=40, decimal_places=18, allow_null=True)
    twap_price = StrictDecimalField(max_digits=40, decimal_places=18, allow_null=True)
    price_deviation = StrictDecimalField(max_digits=12, decimal_places=6, allow_null=True)
    max_price_deviation = StrictDecimalField(max_digits=5, decimal_places=4)
    max_price_impact = StrictDecimalField(max_digits=5, decimal_places=4)
    twap_window_seconds = StrictIntegerField()
    slices = PreviewSliceSerializer(many=True)
    fees = PreviewFeesSerializer(allow_null=True, help_text="Null when the chain gave no fee figures.")
    would_execute = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)


class ExecuteInputSerializer(serializers.Serializer):
    amount = MoneyInputField(required=False, allow_null=True,
                             help_text="ZAR to spend; default: the available revenue (capped at the maximum).")
    price_per_token = MoneyInputField(required=False, allow_null=True,
                                      help_text="ZAR per AZR to size the order with; default: the pool's quote.")


class ExecuteResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    tokens_acquired = StrictDecimalField(max_digits=40, decimal_places=18)
    rand_spent = StrictDecimalField(max_digits=30, decimal_places=8)
    price_per_token = StrictDecimalField(max_digits=30, decimal_places=8, allow_null=True)
    transaction_hash = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    order_id = StrictIntegerField(allow_null=True)


class ExecuteErrorSerializer(ApiErrorSerializer):
    result = ExecuteResultSerializer()
