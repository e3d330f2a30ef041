from django.core.management.base import BaseCommand, CommandError

from accounts.ledger_checks import ledger_checks_run


class Command(BaseCommand):
    help = ("Verify the ledger: every cached wallet balance equals the sum of its rows, and every "
            "check the apps registered (accounts.ledger_checks) passes. Exits non-zero on any mismatch.")

    def handle(self, *args, **options):
        failed = []
        for check, problems in ledger_checks_run():
            for problem in problems:
                self.stderr.write(f"MISMATCH [{check.name}] {problem}")
            if problems:
                failed.append(f"{len(problems)} {check.label}")
            elif options["verbosity"] > 1:
                self.stdout.write(f"{check.name}: OK")
        if failed:
            raise CommandError("; ".join(failed) + ".")
        self.stdout.write(self.style.SUCCESS("Ledger OK: every cached balance equals its ledger sum, "
                                             "and every registered check passes."))
