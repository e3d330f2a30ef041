from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import ledger_mismatches


class Command(BaseCommand):
    help = "Verify that every cached wallet balance equals the sum of its ledger rows."

    def handle(self, *args, **options):
        problems = ledger_mismatches()
        for p in problems:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) {p['wallet']}: "
                              f"cached {p['cached']} != ledger {p['ledger']}")
        if problems:
            raise CommandError(f"{len(problems)} wallet balance(s) differ from their ledger.")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every cached balance equals its ledger sum."))
