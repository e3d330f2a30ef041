from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Token buy-back"

    def ready(self):
        from common.defaults import restore_defaults_after_flush
        from purchases.signals import (
            purchase_completed,
            purchase_refund_preview,
            purchase_refunded,
            purchases_completed_bulk,
        )
        from tokens.defaults import seed
        from tokens.receivers import (
            record_pack_sale_revenue,
            record_pack_sales_revenue,
            refund_preview_part,
            reverse_pack_sale_revenue,
        )

        purchase_completed.connect(record_pack_sale_revenue, dispatch_uid="tokens.record_pack_sale_revenue")
        purchases_completed_bulk.connect(record_pack_sales_revenue, dispatch_uid="tokens.record_pack_sales_revenue")
        purchase_refunded.connect(reverse_pack_sale_revenue, dispatch_uid="tokens.reverse_pack_sale_revenue")
        purchase_refund_preview.connect(refund_preview_part, dispatch_uid="tokens.refund_preview")
        restore_defaults_after_flush(self, marker_model="BuyOrderConfig", seed=seed)

        from accounts.ledger_checks import register_ledger_check
        from tokens.totals import buy_order_totals_problems

        register_ledger_check("buy_order_totals", buy_order_totals_problems,
                              label="buy-order running total(s) disagree with the orders")
