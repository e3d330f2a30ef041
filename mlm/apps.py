from django.apps import AppConfig


class MlmConfig(AppConfig):
    name = "mlm"
    verbose_name = "Compensation plan"

    def ready(self):
        from common.defaults import restore_defaults_after_flush
        from mlm import receivers  # connects the receivers

        receivers.connect_plan_receivers()
        from mlm.defaults import seed

        restore_defaults_after_flush(self, marker_model="PlanSettings", seed=seed)

        from accounts.ledger_checks import register_ledger_check
        from mlm.selectors import bonus_status_problems

        register_ledger_check("bonus_statuses", bonus_status_problems,
                              label="bonus(es) whose status disagrees with their ledger credits")
