from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import ledger_mismatches


class Command(BaseCommand):
    help = ("Verify that every cached wallet balance equals the sum of its ledger rows, and that "
            "bonus statuses agree with their ledger credits.")

    def handle(self, *args, **options):
        problems = ledger_mismatches()
        for p in problems:
            self.stderr.write(f"MISMATCH member {p['user_id']} ({p['email']}) {p['wallet']}: "
                              f"cached {p['cached']} != ledger {p['ledger']}")
        bonus_problems = []
        if apps.is_installed("mlm"):  # to be replaced by the registry of extra checks
            from mlm.selectors import pending_bonus_mismatches

            bonus_problems = pending_bonus_mismatches()
            for b in bonus_problems:
                self.stderr.write(f"MISMATCH bonus {b['bonus_id']} ({b['kind']}, {b['status']}, {b['amount']}) of "
                                  f"member {b['user_id']}: {b['credits']} credit(s) of {b['credited']}: "
                                  f"{b['problem']}")
        if problems or bonus_problems:
            raise CommandError(f"{len(problems)} wallet balance(s) differ from their ledger; "
                               f"{len(bonus_problems)} bonus(es) disagree with their ledger credits.")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every cached balance equals its ledger sum, "
                                             "every bonus status agrees with its credits."))
