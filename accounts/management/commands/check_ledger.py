from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import debt_mismatches, ledger_mismatches


class Command(BaseCommand):
    help = ("Verify that every cached wallet balance equals the sum of its ledger rows, every clawback "
            "debt the sum of its debt entries, and every bonus status its ledger rows.")

    def handle(self, *args, **options):
        # The bonus check lives in mlm (accounts cannot depend on it); imported here until the
        # apps register their checks with accounts.
        from mlm.selectors import bonus_ledger_mismatches

        problems = ledger_mismatches()
        for p in problems:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) {p['wallet']}: "
                              f"cached {p['cached']} != ledger {p['ledger']}")
        debts = debt_mismatches()
        for p in debts:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) clawback debt: "
                              f"cached {p['cached']} != debt entries {p['entries']}")
        bonuses = bonus_ledger_mismatches()
        for p in bonuses:
            self.stderr.write(f"MISMATCH bonus {p['bonus_id']} ({p['kind']} {p['amount']} to member "
                              f"{p['user_id']}): {p['problem']}")
        if problems or debts or bonuses:
            raise CommandError(f"{len(problems)} wallet balance(s) differ from their ledger, {len(debts)} clawback "
                               f"debt(s) from their entries, {len(bonuses)} bonus(es) from their ledger rows.")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every cached balance equals its ledger sum."))
