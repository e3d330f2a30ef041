"""Imported purchases are processed like any counted purchase (volumes, bonuses), through
the public names of the mlm app."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import User
from accounts.selectors import ledger_mismatches, system_root
from legacy_import.services import legacy_file_import
from mlm.models import Bonus
from mlm.selectors import member_summary
from purchases.models import Purchase
from tests.legacy_import.conftest import SAMPLE

pytestmark = pytest.mark.django_db

PLAN_CAP_OVER_START = Decimal("0.14")  # 18% cap − 4% (a new member's rank: start)


@pytest.fixture
def imported(catalogue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = legacy_file_import(path=SAMPLE)
    assert run.imported == 4 and run.ok
    return {u.first_name.lower(): u for u in User.objects.filter(email__endswith="@example.com")}


def test_volumes_follow_the_sample(imported):
    thandi, pieter, naledi = imported["thandi"], imported["pieter"], imported["naledi"]
    t, p, n = (member_summary(user=u) for u in (thandi, pieter, naledi))
    # Thandi bought 1,000; her downline (Pieter 500 + 200, Naledi 1,500) is her FV.
    assert (t["pv"], t["fv"]) == (Decimal("1000"), Decimal("2200"))
    assert (p["pv"], p["fv"]) == (Decimal("700"), Decimal("1500"))
    assert (n["pv"], n["fv"]) == (Decimal("1500"), Decimal("0"))


def test_every_imported_purchase_pays_the_differentials(imported):
    root = system_root()
    for purchase in Purchase.objects.filter(kind=Purchase.Kind.LEGACY):
        bonuses = Bonus.objects.filter(purchase=purchase, kind__in=[
            Bonus.Kind.DIFFERENTIAL, Bonus.Kind.SYSTEM_COMPRESSION])
        assert bonuses.exists(), purchase
        # Nobody above a start-rank buyer outranks it here: the root gets the whole 14%.
        assert sum(b.amount for b in bonuses) == (purchase.price * PLAN_CAP_OVER_START).quantize(Decimal("0.01"))
        assert {b.user for b in bonuses} == {root}
    assert Bonus.objects.filter(user=imported["thandi"], kind=Bonus.Kind.INVESTMENT).exists()
    assert ledger_mismatches() == []
    call_command("check_ledger")


def test_rerun_processes_nothing_new(imported, django_capture_on_commit_callbacks):
    before = Bonus.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        run = legacy_file_import(path=SAMPLE)
    assert run.skipped == 4 and Bonus.objects.count() == before
    assert member_summary(user=imported["thandi"])["fv"] == Decimal("2200")
