"""check_ledger runs every check the apps registered (accounts.ledger_checks)."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import ledger_checks

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    saved = dict(ledger_checks._CHECKS)
    yield
    ledger_checks._CHECKS.clear()
    ledger_checks._CHECKS.update(saved)


def test_apps_register_their_checks():
    names = [check.name for check in ledger_checks.ledger_checks()]
    assert names[0] == "wallet_balances" and "withdrawal_reserves" in names


def test_a_registered_check_that_finds_problems_fails_the_command(registry, capsys):
    call_command("check_ledger")
    problems = ["bonus #1: paid but no ledger row", "bonus #2: reversed twice"]
    ledger_checks.register_ledger_check("bonus_status", lambda: iter(problems),
                                        label="bonus status(es) disagree with the ledger")
    with pytest.raises(CommandError, match="2 bonus status"):
        call_command("check_ledger")
    err = capsys.readouterr().err
    assert "MISMATCH [bonus_status] bonus #1: paid but no ledger row" in err
    # Registering the name again replaces the check.
    ledger_checks.register_ledger_check("bonus_status", list, label="bonus status(es) disagree")
    call_command("check_ledger", verbosity=2)
    assert "bonus_status: OK" in capsys.readouterr().out
