from django.apps import AppConfig


class MlmConfig(AppConfig):
    name = "mlm"
    verbose_name = "Compensation plan"

    def ready(self):
        from mlm import receivers  # noqa: F401 - connects the receivers
