"""A refunded purchase's pack-sale revenue is reversed, exactly once (money-lifecycle §2)."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django_celery_beat.models import PeriodicTask

from purchases.services import purchase_create, purchase_grant, purchase_refund
from purchases.signals import purchase_refunded
from tests.factories import OptionFactory, UserFactory
from tokens.defaults import REVERSALS_SWEEP_NAME
from tokens.models import BuyOrder, Revenue
from tokens.selectors import available_revenue, buy_order_config, unspent_revenue
from tokens.services import pack_sale_reversals_sweep, revenue_reverse_pack_sale, revenue_track

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def sale(django_capture_on_commit_callbacks):
    """A purchase of 50 USD whose pack-sale revenue (50 × the seeded 18.00 = 900 ZAR) is recorded."""
    buyer = UserFactory(balance="50")
    with django_capture_on_commit_callbacks(execute=True):
        p = purchase_create(user=buyer, option=OptionFactory(pack_price=D("50")))
    original = Revenue.objects.get(external_ref=f"purchase:{p.pk}")
    assert original.amount_zar == D("900")
    return p, original


def test_refund_reverses_the_revenue_with_the_same_amounts(sale, django_capture_on_commit_callbacks):
    p, original = sale
    revenue_track(source="course_sale", amount="100")
    before = (unspent_revenue(), available_revenue())
    from tokens.services import exchange_rate_set

    exchange_rate_set(currency="USD", rate_to_zar="20.00")  # a newer rate must not change the reversal
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=p)
    reversal = Revenue.objects.get(reverses=original)
    assert (reversal.source, reversal.amount, reversal.currency, reversal.rate_to_zar, reversal.amount_zar,
            reversal.external_ref) == ("pack_sale", D("-50"), "USD", original.rate_to_zar, D("-900"),
                                       f"refund:{refund.pk}")
    assert unspent_revenue() == before[0] - D("900") == D("100")
    assert available_revenue() == D("10.00")  # 10% of what is left
    # Retried: the same record, nothing new.
    assert revenue_reverse_pack_sale(refund_id=refund.pk) == reversal
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refunded.send(sender=type(p), purchase=p, refund=refund)
    assert Revenue.objects.filter(reverses__isnull=False).count() == 1


def test_the_database_ties_the_sign_to_the_reversal(sale):
    p, original = sale
    with pytest.raises(IntegrityError), transaction.atomic():
        Revenue.objects.create(source="other", amount=D("-1"), amount_zar=D("-1"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Revenue.objects.create(source="pack_sale", amount=D("1"), amount_zar=D("1"), reverses=original)
    Revenue.objects.create(source="pack_sale", amount=D("-50"), amount_zar=D("-900"), reverses=original)
    with pytest.raises(IntegrityError), transaction.atomic():  # one reversal per record
        Revenue.objects.create(source="pack_sale", amount=D("-50"), amount_zar=D("-900"), reverses=original)


def test_available_revenue_never_goes_below_zero_when_the_revenue_was_spent(sale, django_capture_on_commit_callbacks):
    p, original = sale
    # A buy reserved 800 of the 900 ZAR; then the purchase is refunded.
    BuyOrder.objects.create(status="pending", trigger="manual", amount=D("800"), quoted_price=D("1"),
                            expected_tokens=D("800"), min_tokens=D("790"), max_slippage=D("0.01"), disposition="hold")
    with django_capture_on_commit_callbacks(execute=True):
        purchase_refund(purchase=p)
    assert unspent_revenue() == D("-800")
    assert available_revenue() == D("0.00")
    # New revenue makes up the deficit first.
    revenue_track(source="subscription", amount="500")
    assert available_revenue() == D("0.00")
    revenue_track(source="subscription", amount="1300")
    assert available_revenue() == round(D("1000") * buy_order_config().revenue_percentage, 2)


def test_nothing_to_reverse_when_no_revenue_was_recorded(django_capture_on_commit_callbacks, settings):
    settings.TOKENS_LEGACY_PURCHASES_ARE_REVENUE = False
    buyer = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        legacy, _ = purchase_grant(user=buyer, option=OptionFactory(), shares=10, price="20", kind="legacy",
                                   idempotency_key="L-7")
    with django_capture_on_commit_callbacks(execute=True):
        refund = purchase_refund(purchase=legacy)
    assert not Revenue.objects.exists()
    assert revenue_reverse_pack_sale(refund_id=refund.pk) is None
    assert pack_sale_reversals_sweep(older_than_minutes=0) == 0


def test_lost_messages_are_swept_and_refunded_purchases_never_recorded(sale):
    p, original = sale
    refund = purchase_refund(purchase=p)  # the message is lost (no on_commit run)
    assert not Revenue.objects.filter(reverses=original).exists()
    assert pack_sale_reversals_sweep(older_than_minutes=5) == 0  # too recent
    assert pack_sale_reversals_sweep(older_than_minutes=0) == 1
    assert Revenue.objects.get(reverses=original).external_ref == f"refund:{refund.pk}"
    assert pack_sale_reversals_sweep(older_than_minutes=0) == 0

    # A refunded purchase whose sale was never recorded is not recorded by the backfill.
    buyer = UserFactory(balance="50")
    q = purchase_create(user=buyer, option=OptionFactory(pack_price=D("50")))  # no revenue: message lost
    purchase_refund(purchase=q)
    call_command("tokens_record_pack_sales")
    assert not Revenue.objects.filter(external_ref=f"purchase:{q.pk}").exists()


def test_backfill_command_reverses_what_is_missing(sale, capsys):
    p, original = sale
    purchase_refund(purchase=p)  # message lost
    call_command("tokens_record_pack_sales")
    assert Revenue.objects.filter(reverses=original).exists()
    assert "1 refunded purchase(s) had their pack-sale revenue reversed now" in capsys.readouterr().out


def test_the_sweep_has_a_beat_row():
    task = PeriodicTask.objects.get(name=REVERSALS_SWEEP_NAME)
    assert task.task == "tokens.pack_sale_reversals_sweep" and task.interval.every == 5 and task.enabled
