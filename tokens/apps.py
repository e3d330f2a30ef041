from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Token buy-back"

    def ready(self):
        from common.defaults import restore_defaults_after_flush
        from purchases.signals import purchase_completed
        from tokens.defaults import seed
        from tokens.receivers import record_pack_sale_revenue

        purchase_completed.connect(record_pack_sale_revenue, dispatch_uid="tokens.record_pack_sale_revenue")
        restore_defaults_after_flush(self, marker_model="BuyOrderConfig", seed=seed)
