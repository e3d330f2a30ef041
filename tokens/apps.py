from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Token buy-back"

    def ready(self):
        from purchases.signals import purchase_completed
        from tokens.receivers import record_pack_sale_revenue

        purchase_completed.connect(record_pack_sale_revenue, dispatch_uid="tokens.record_pack_sale_revenue")
