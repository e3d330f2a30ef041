"""The import in chunks: the same outcome as importing row by row, each purchase processed
once, its revenue recorded once, and a bounded number of queries per chunk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.selectors import ledger_mismatches, system_root
from accounts.services import member_create
from legacy_import import services as importer
from legacy_import.models import ImportRun, LegacyRecord
from legacy_import.services import legacy_file_import, plan_rows
from mlm.models import Bonus, MemberStats, MonthlyVolume, ProcessedPurchase
from purchases.models import Purchase
from purchases.services import purchase_grant
from purchases.signals import purchase_completed, purchases_completed_bulk
from tests.legacy_import.conftest import SAMPLE
from tokens.models import Revenue

pytestmark = pytest.mark.django_db

HEADER = "legacy_id,email,sponsor_email,first_name,last_name,project,option,quantity,cost_per_share,purchased_at"


class _Rollback(Exception):
    pass


def generated_file(tmp_path, *, rows: int, members: int, seed: int = 7, tag: str = "g"):
    """A network (sponsors before or after their downline in the file), both projects,
    prices that reach the investment tiers and the pioneer threshold, dates in random order."""
    rng = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    lines = [HEADER]
    for n in range(rows):
        if n < members:
            buyer = n
            sponsor = "" if n == 0 or rng.random() < 0.1 else f"{tag}{rng.randrange(n)}@example.com"
        else:
            buyer, sponsor = rng.randrange(members), ""
        project, unit = rng.choice([("JETUP", "0.05"), ("AQUIX", "0.03")])
        quantity = rng.choice([1000, 5000, 20_000, 100_000, 400_000])
        when = start + timedelta(days=rng.randrange(700), seconds=rng.randrange(86_400))
        lines.append(f"{tag}-{n},{tag}{buyer}@example.com,{sponsor},Gen,{buyer},{project},,{quantity},{unit},"
                     f"{when.isoformat()}")
    rng.shuffle(lines[1 + members:])  # repeat purchases in any line order
    path = tmp_path / f"{tag}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_row_by_row(path) -> None:
    """The reference: today's row-by-row import through the single-purchase services — one
    transaction per row, `member_create`, `purchase_grant` and its `purchase_completed`."""
    plan = plan_rows(list(importer.read_rows(path)), now=datetime.now(UTC))
    run = ImportRun.objects.create(file_name=path.name, checksum="reference")
    users = dict(plan.users)
    for row in plan.rows:
        with transaction.atomic():
            chain, cursor = [], row.email
            while cursor and cursor not in users:
                chain.append(plan.new_members[cursor])
                cursor = chain[-1].sponsor_email
            for spec in reversed(chain):
                users[spec.email] = member_create(
                    email=spec.email, sponsor=users[spec.sponsor_email] if spec.sponsor_email else None,
                    first_name=spec.first_name, last_name=spec.last_name)
            purchase, _ = purchase_grant(user=users[row.email], option=row.option, shares=row.shares,
                                         price=row.price, kind=Purchase.Kind.LEGACY,
                                         idempotency_key=f"legacy:{row.legacy_id}", purchased_at=row.purchased_at)
            LegacyRecord.objects.create(legacy_id=row.legacy_id, purchase=purchase, run=run, line=row.line)


def outcome() -> dict:
    """Everything processing decides, keyed by e-mail and legacy_id (ids differ between runs)."""
    def legacy_id(purchase_id):
        return LegacyRecord.objects.get(purchase_id=purchase_id).legacy_id

    bonuses = sorted(
        (legacy_id(b.purchase_id), b.user.email, b.kind, b.level, b.rate, b.amount, b.status,
         b.compression_applied, b.granted_purchase.shares if b.granted_purchase_id else None)
        for b in Bonus.objects.select_related("user", "granted_purchase"))
    stats = sorted((s.user.email, s.rank_id, s.is_pioneer, s.pv, s.fv, s.tv)
                   for s in MemberStats.objects.select_related("user"))
    monthly = sorted((m.user.email, m.month, m.pv) for m in MonthlyVolume.objects.select_related("user"))
    members = sorted((u.email, u.sponsor.email if u.sponsor else None, u.depth,
                      u.balance_active, u.balance_passive) for u in User.objects.select_related("sponsor"))
    revenue = sorted((legacy_id(int(r.external_ref.split(":")[1])), r.amount, r.amount_zar)
                     for r in Revenue.objects.filter(source=Revenue.Source.PACK_SALE))
    grants = sorted((p.user.email, p.shares, p.price) for p in
                    Purchase.objects.filter(kind=Purchase.Kind.BONUS).select_related("user"))
    return {"bonuses": bonuses, "stats": stats, "monthly": monthly, "members": members, "revenue": revenue,
            "grants": grants}


def both_ways(path, capture) -> tuple[dict, dict]:
    """(row by row, in chunks) on the same database: the first rolled back before the second."""
    try:
        with transaction.atomic():
            with capture(execute=True):
                import_row_by_row(path)
            reference = outcome()
            raise _Rollback
    except _Rollback:
        pass
    assert not Purchase.objects.exists() and not Bonus.objects.exists()
    with capture(execute=True):
        run = legacy_file_import(path=path)
    assert run.ok and run.imported == run.read
    return reference, outcome()


def test_sample_in_chunks_pays_what_row_by_row_pays(catalogue, django_capture_on_commit_callbacks):
    reference, chunked = both_ways(SAMPLE, django_capture_on_commit_callbacks)
    assert reference["bonuses"] and reference["revenue"]
    assert chunked == reference


def test_generated_network_in_chunks_pays_what_row_by_row_pays(catalogue, tmp_path, monkeypatch,
                                                              django_capture_on_commit_callbacks):
    monkeypatch.setattr(importer, "CHUNK", 70)  # several chunks, a processing batch across none
    path = generated_file(tmp_path, rows=260, members=60)
    reference, chunked = both_ways(path, django_capture_on_commit_callbacks)
    kinds = {b[2] for b in reference["bonuses"]}
    assert {Bonus.Kind.INVESTMENT, Bonus.Kind.REFERRAL} <= kinds and len(reference["bonuses"]) > 260
    assert any(s[2] for s in reference["stats"])  # pioneers made, in date order
    assert chunked == reference
    assert ledger_mismatches() == []


def test_each_purchase_is_processed_once_and_sends_no_single_signal(catalogue, tmp_path, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    monkeypatch.setattr(importer, "CHUNK", 40)
    singles, batches = [], []

    def on_single(sender, purchase, **kwargs):
        singles.append(purchase.pk)

    def on_batch(sender, purchases, **kwargs):
        batches.append([p.pk for p in purchases])

    purchase_completed.connect(on_single, dispatch_uid="test.single")
    purchases_completed_bulk.connect(on_batch, dispatch_uid="test.batch")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            run = legacy_file_import(path=generated_file(tmp_path, rows=100, members=30))
    finally:
        purchase_completed.disconnect(dispatch_uid="test.single")
        purchases_completed_bulk.disconnect(dispatch_uid="test.batch")
    assert run.imported == 100 and singles == []
    assert [len(b) for b in batches] == [40, 40, 20]
    ids = [i for b in batches for i in b]
    # ids in purchased_at order, so processing order is date order
    dates = dict(Purchase.objects.values_list("id", "created_at"))
    assert ids == sorted(ids) and [dates[i] for i in ids] == sorted(dates[i] for i in ids)
    assert sorted(ProcessedPurchase.objects.values_list("purchase_id", flat=True)) == sorted(ids)

    before = (Bonus.objects.count(), Revenue.objects.count())
    with django_capture_on_commit_callbacks(execute=True):  # a duplicated message changes nothing
        purchases_completed_bulk.send(sender=Purchase, purchases=list(Purchase.objects.order_by("id")))
    assert (Bonus.objects.count(), Revenue.objects.count()) == before


def test_revenue_is_recorded_once_per_purchase(catalogue, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(importer, "CHUNK", 30)
    path = generated_file(tmp_path, rows=80, members=20)
    with django_capture_on_commit_callbacks(execute=True):
        legacy_file_import(path=path)
    refs = list(Revenue.objects.filter(source=Revenue.Source.PACK_SALE).values_list("external_ref", flat=True))
    purchases = Purchase.objects.filter(kind=Purchase.Kind.LEGACY)
    assert sorted(refs) == sorted(f"purchase:{p.pk}" for p in purchases)
    for p in purchases:
        r = Revenue.objects.get(external_ref=f"purchase:{p.pk}")
        assert (r.amount, r.currency, r.recorded_at) == (p.price, "USD", p.created_at)
        assert r.amount_zar == (p.price * r.rate_to_zar).quantize(Decimal("0.00000001"))
    with django_capture_on_commit_callbacks(execute=True):
        again = legacy_file_import(path=path)
    assert again.skipped == 80 and Revenue.objects.count() == len(refs)


def test_legacy_revenue_can_be_turned_off_in_bulk_too(catalogue, settings, django_capture_on_commit_callbacks):
    settings.TOKENS_LEGACY_PURCHASES_ARE_REVENUE = False
    with django_capture_on_commit_callbacks(execute=True):
        run = legacy_file_import(path=SAMPLE)
    assert run.imported == 4 and not Revenue.objects.exists()
    assert ProcessedPurchase.objects.count() == 4  # still processed


def _queries(path, *, execute: bool, capture) -> int:
    with CaptureQueriesContext(connection) as queries, capture(execute=execute):
        run = legacy_file_import(path=path)
    assert run.ok
    return len(queries)


@pytest.mark.postgres  # on SQLite Django splits bulk inserts by its 999-parameter limit: counts grow there
@pytest.mark.parametrize("execute", [False, True], ids=["import", "import+processing"])
def test_queries_per_chunk_do_not_grow_with_rows(catalogue, tmp_path, execute, django_capture_on_commit_callbacks):
    """One chunk of 40 rows and one of 400 (new members, sponsors, both projects) take the
    same number of statements: validation in bulk, then per chunk a constant number — the
    members, the purchases, one ledger batch, the records; processing in batches of 100."""
    small = _queries(generated_file(tmp_path, rows=40, members=20, tag="s"), execute=execute,
                     capture=django_capture_on_commit_callbacks)
    large = _queries(generated_file(tmp_path, rows=400, members=200, tag="l"), execute=execute,
                     capture=django_capture_on_commit_callbacks)
    if execute:
        # processing: a constant number of statements per batch of 100 (4 batches for 400 rows)
        assert large <= small + 3 * 45, (small, large)
    else:
        assert small <= 30 and large <= small + 2, (small, large)


def test_a_refused_chunk_falls_back_to_row_by_row(catalogue, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    """A member created meanwhile (outside the file) makes the chunk's member INSERT fail:
    the other rows of the chunk still go in, that row fails alone with the reason."""
    monkeypatch.setattr(importer, "CHUNK", 50)
    path = generated_file(tmp_path, rows=50, members=10)
    real_plan_rows = importer.plan_rows

    def plan_then_race(*args, **kwargs):
        plan = real_plan_rows(*args, **kwargs)
        member_create(email="g3@example.com", sponsor=system_root())  # after validation
        return plan

    monkeypatch.setattr(importer, "plan_rows", plan_then_race)
    with django_capture_on_commit_callbacks(execute=True):
        run = legacy_file_import(path=path)
    g3_rows = Purchase.objects.filter(user__email="g3@example.com").count()
    failed_lines = {e["line"] for e in run.errors}
    assert run.failed == len(failed_lines) >= 1 and run.imported == 50 - run.failed
    assert all("already exists" in e["reason"] for e in run.errors)
    assert g3_rows == 0  # its rows failed (the member is not the file's), the rest went in
    assert ProcessedPurchase.objects.count() == run.imported
    assert ledger_mismatches() == []
