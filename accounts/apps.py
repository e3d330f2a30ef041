from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_system_root(sender, using="default", **kwargs):
    from accounts.services import system_root_ensure

    system_root_ensure(using=using)


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Members and wallets"

    def ready(self):
        # The data migration creates the root; this keeps it after a flush too.
        post_migrate.connect(_ensure_system_root, sender=self, dispatch_uid="accounts-system-root")

        # check_ledger's first check; other apps register theirs (accounts.ledger_checks).
        from accounts.ledger_checks import register_ledger_check
        from accounts.selectors import debt_problems, wallet_balance_problems

        register_ledger_check("wallet_balances", wallet_balance_problems,
                              label="wallet balance(s) differ from their ledger")
        register_ledger_check("clawback_debts", debt_problems,
                              label="clawback debt(s) differ from their debt entries")
