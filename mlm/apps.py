from django.apps import AppConfig


class MlmConfig(AppConfig):
    name = "mlm"
    verbose_name = "Compensation plan"
