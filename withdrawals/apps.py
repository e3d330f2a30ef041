from django.apps import AppConfig


class WithdrawalsConfig(AppConfig):
    name = "withdrawals"
    verbose_name = "Withdrawals"

    def ready(self):
        from accounts.ledger_checks import register_ledger_check
        from withdrawals.selectors import withdrawal_reserve_problems

        register_ledger_check("withdrawal_reserves", withdrawal_reserve_problems,
                              label="withdrawal reserve(s) disagree with the ledger")
