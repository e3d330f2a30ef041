"""The checks `manage.py check_ledger` runs: a small registry that apps add to.

The ledger is the truth; an app that keeps money state beside it (a withdrawal's reserve, a
bonus's status, a clawback debt) proves that state against the ledger rows with a check. An app
registers its checks in its `AppConfig.ready()`, so `accounts` never imports it:

    from accounts.ledger_checks import register_ledger_check

    class WithdrawalsConfig(AppConfig):
        def ready(self):
            from withdrawals.selectors import withdrawal_reserve_problems

            register_ledger_check("withdrawal_reserves", withdrawal_reserve_problems,
                                  label="withdrawal reserve(s) disagree with the ledger")

A check is a callable with no arguments that returns an iterable of problems, one readable
line each (name the row, what was expected, what was found); no problem means it passed. It
only reads, and should aggregate in the database rather than walk rows one query at a time.
Registering a name again replaces the check (so `ready()` may run twice). `check_ledger` runs
every registered check in registration order, prints each problem and exits non-zero when any
check found one; `ledger_checks_run()` does the same for code and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LedgerCheck:
    name: str
    func: Callable[[], Iterable[str]]
    label: str  # "<count> <label>" summarises the failures, e.g. "2 wallet balance(s) differ …"


_CHECKS: dict[str, LedgerCheck] = {}


def register_ledger_check(name: str, func: Callable[[], Iterable[str]], *, label: str) -> None:
    """Add (or replace) the check called `name`."""
    _CHECKS[name] = LedgerCheck(name=name, func=func, label=label)


def ledger_checks() -> list[LedgerCheck]:
    """The registered checks, in registration order."""
    return list(_CHECKS.values())


def ledger_checks_run() -> list[tuple[LedgerCheck, list[str]]]:
    """Run every registered check: [(check, problems)], one entry per check."""
    return [(check, list(check.func())) for check in ledger_checks()]
