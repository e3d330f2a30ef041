from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import debt_mismatches, ledger_mismatches


class Command(BaseCommand):
    help = ("Verify that every cached wallet balance equals the sum of its ledger rows and every clawback "
            "debt the sum of its debt entries.")

    def handle(self, *args, **options):
        problems = ledger_mismatches()
        for p in problems:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) {p['wallet']}: "
                              f"cached {p['cached']} != ledger {p['ledger']}")
        debts = debt_mismatches()
        for p in debts:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) clawback debt: "
                              f"cached {p['cached']} != debt entries {p['entries']}")
        if problems or debts:
            raise CommandError(f"{len(problems)} wallet balance(s) differ from their ledger, {len(debts)} clawback "
                               f"debt(s) from their entries.")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every cached balance equals its ledger sum."))
