"""Revenue and exchange rates: what the buy-back spends.

``revenue_track`` records revenue once per (source, reference). A counted purchase is
``pack_sale`` revenue, recorded by a task enqueued on commit (``pack_sales_record``, behind
it the beat sweeper ``pack_sales_sweep``), and its refund reverses it with a negative record of the same amounts
(``revenue_reverse_pack_sale``, exactly once; ``pack_sale_reversals_sweep`` catches lost
messages).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.errors import field_error
from common.money import MONEY_QUANTUM, ZERO, format_money, round_money, to_money
from common.text import text_clean
from purchases.models import Purchase, Refund
from tokens.models import ExchangeRate, Revenue
from tokens.pack_sales_mark import pack_sales_mark, pack_sales_mark_advance
from tokens.refs import pack_sale_ref, refund_ref
from tokens.selectors import exchange_rate_current
from tokens.totals import revenue_totals_apply

logger = logging.getLogger(__name__)

BASE_CURRENCY = "ZAR"


def _clean_currency(currency) -> str:
    if not isinstance(currency, str) or len(currency.strip()) != 3 or not currency.strip().isalpha() \
            or not currency.strip().isascii():
        raise field_error("currency", "The currency must be an ISO 4217 code of 3 letters (e.g. ZAR, USD).",
                          code="invalid_currency")
    return currency.strip().upper()


def revenue_track(*, source: str, amount, currency: str = BASE_CURRENCY, external_ref: str | None = None,
                  recorded_at: datetime | None = None) -> Revenue:
    """Record revenue; the same (source, external_ref) is recorded once and returned again."""
    return revenue_track_with_status(source=source, amount=amount, currency=currency,
                                     external_ref=external_ref, recorded_at=recorded_at)[0]


def revenue_track_with_status(*, source: str, amount, currency: str = BASE_CURRENCY,
                              external_ref: str | None = None,
                              recorded_at: datetime | None = None) -> tuple[Revenue, bool]:
    """`revenue_track`, and whether the record was created (False: an earlier one returned)."""
    if source not in Revenue.Source.values:
        raise field_error("source", f"Unknown source {source!r}: use one of "
                                    f"{', '.join(Revenue.Source.values)}.", code="unknown_source")
    amount = to_money(amount)
    currency = _clean_currency(currency)
    if external_ref is not None:
        external_ref = text_clean(external_ref, field="external_ref").strip() or None
        if external_ref and len(external_ref) > 200:
            raise field_error("external_ref", "The external reference is too long (200 at most).",
                              code="max_length")
    if external_ref:
        existing = Revenue.objects.filter(source=source, external_ref=external_ref).first()
        if existing is not None:
            return _same_revenue(existing, amount=amount, currency=currency), False
    rate = _rate_to_zar(currency)
    amount_zar = _amount_zar(amount, rate)
    try:
        with transaction.atomic():
            record = Revenue.objects.create(source=source, amount=amount, currency=currency, rate_to_zar=rate,
                                            amount_zar=amount_zar, external_ref=external_ref,
                                            recorded_at=recorded_at or timezone.now())
            revenue_totals_apply(amount_zar=record.amount_zar, count=1)
    except IntegrityError:
        # A concurrent retry recorded the same reference first.
        existing = Revenue.objects.filter(source=source, external_ref=external_ref).first()
        if external_ref and existing is not None:
            return _same_revenue(existing, amount=amount, currency=currency), False
        raise
    logger.info("revenue %s recorded: %s %s = %s ZAR (ref %s)", record.pk, amount, currency, amount_zar,
                external_ref)
    return record, True


def _rate_to_zar(currency: str) -> Decimal:
    """The rate a record in `currency` is converted with now (1 for ZAR)."""
    if currency == BASE_CURRENCY:
        return Decimal(1)
    row = exchange_rate_current(currency=currency)
    if row is None:
        raise field_error("currency", f"No exchange rate for {currency}: add a {currency}→ZAR rate "
                                      "in the admin first.", code="no_exchange_rate")
    return row.rate_to_zar


def _amount_zar(amount: Decimal, rate: Decimal) -> Decimal:
    amount_zar = round_money(amount * rate, places=MONEY_QUANTUM)
    if amount_zar <= 0:
        raise field_error("amount", "The amount is too small to convert to ZAR.", code="amount_too_small")
    to_money(amount_zar, field="amount_zar")  # fits the column
    return amount_zar


def _same_revenue(existing: Revenue, *, amount: Decimal, currency: str) -> Revenue:
    if existing.amount != amount or existing.currency != currency:
        raise field_error("external_ref", f"The reference {existing.external_ref!r} was already recorded "
                                          f"with {format_money(existing.amount)} {existing.currency}; a retry "
                                          "must send the same amount and currency.", code="reference_conflict")
    return existing


def exchange_rate_set(*, currency: str, rate_to_zar, valid_from: datetime | None = None, note: str = "",
                      created_by=None) -> ExchangeRate:
    """Add a rate row for ``currency`` (1 unit = ``rate_to_zar`` ZAR); the newest row wins."""
    currency = _clean_currency(currency)
    if currency == BASE_CURRENCY:
        raise field_error("currency", "ZAR is the base currency: its rate is always 1.", code="base_currency")
    rate = to_money(rate_to_zar, field="rate_to_zar")
    note = text_clean(note, field="note", multiline=True)
    row = ExchangeRate.objects.create(currency=currency, rate_to_zar=rate, valid_from=valid_from or timezone.now(),
                                      note=note[:200], created_by=created_by)
    logger.info("exchange rate %s: 1 %s = %s ZAR from %s", row.pk, currency, rate, row.valid_from)
    return row


def revenue_record_pack_sale(*, purchase) -> Revenue | None:
    """`pack_sale` revenue for a counted purchase (its price is USD); idempotent per purchase.

    Without a USD rate nothing is recorded and an error is logged: the purchase is not
    affected, and ``manage.py tokens_record_pack_sales`` records the missing ones later.
    """
    if not purchase.is_counted:
        return None
    if purchase.kind == "legacy" and not getattr(settings, "TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True):
        return None
    try:
        return revenue_track(source=Revenue.Source.PACK_SALE, amount=purchase.price, currency="USD",
                             external_ref=pack_sale_ref(purchase.pk), recorded_at=purchase.created_at)
    except ValidationError as exc:
        logger.error("pack-sale revenue of purchase %s (%s USD) NOT recorded: %s -- fix it, then run "
                     "`manage.py tokens_record_pack_sales`", purchase.pk, purchase.price, exc.messages)
        return None


def revenue_record_pack_sales(*, purchases) -> int:
    """`revenue_record_pack_sale` for a batch of purchases (the legacy import): the USD rate
    read once, the references already recorded skipped in one look-up, the rest in one INSERT
    (ON CONFLICT DO NOTHING: a concurrent single record of the same purchase wins, once).
    Returns how many were still missing at the look-up. Without a USD rate nothing is recorded and an
    error is logged, as for a single purchase (``tokens_record_pack_sales`` catches up).
    """
    legacy_counts = getattr(settings, "TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True)
    todo = [p for p in purchases if p.is_counted and (legacy_counts or p.kind != "legacy")]
    if not todo:
        return 0
    try:
        rate = _rate_to_zar("USD")
    except ValidationError as exc:
        logger.error("pack-sale revenue of %d purchases (%s…%s) NOT recorded: %s -- fix it, then run "
                     "`manage.py tokens_record_pack_sales`", len(todo), todo[0].pk, todo[-1].pk, exc.messages)
        return 0
    refs = {pack_sale_ref(p.pk): p for p in todo}
    done = set(Revenue.objects.filter(source=Revenue.Source.PACK_SALE, external_ref__in=list(refs))
               .values_list("external_ref", flat=True))
    rows = []
    for ref, purchase in refs.items():
        if ref in done:
            continue
        try:
            amount = to_money(purchase.price)
            rows.append(Revenue(source=Revenue.Source.PACK_SALE, amount=amount, currency="USD", rate_to_zar=rate,
                                amount_zar=_amount_zar(amount, rate), external_ref=ref,
                                recorded_at=purchase.created_at))
        except ValidationError as exc:
            logger.error("pack-sale revenue of purchase %s (%s USD) NOT recorded: %s", purchase.pk,
                         purchase.price, exc.messages)
    if not rows:
        return 0
    with transaction.atomic():
        inserted = _insert_ignoring_conflicts(rows)
        revenue_totals_apply(amount_zar=sum(inserted, ZERO), count=len(inserted))
    logger.info("pack-sale revenue of %d purchases recorded (%s…%s)", len(inserted), rows[0].external_ref,
                rows[-1].external_ref)
    return len(rows)


def _insert_ignoring_conflicts(rows: list[Revenue]) -> list[Decimal]:
    """One ``INSERT … ON CONFLICT DO NOTHING RETURNING amount_zar``: the amounts of the rows
    actually inserted (a reference a racing task inserted first returns nothing)."""
    connection = transaction.get_connection()
    fields = [f for f in Revenue._meta.concrete_fields if not f.primary_key]
    values, params = [], []
    for row in rows:
        values.append("(" + ", ".join(["%s"] * len(fields)) + ")")
        params.extend(f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields)
    quote = connection.ops.quote_name
    amount_zar = Revenue._meta.get_field("amount_zar")
    sql = (f"INSERT INTO {quote(Revenue._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES {', '.join(values)} ON CONFLICT DO NOTHING RETURNING {quote(amount_zar.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [amount_zar.to_python(value) for (value,) in cursor.fetchall()]


def revenue_reverse_pack_sale(*, refund_id: int) -> Revenue | None:
    """Reverse the `pack_sale` revenue of a refunded purchase (money-lifecycle §2): a negative
    record of the same amounts (same currency, rate and ZAR amount as recorded), source
    `pack_sale`, `external_ref` = `refund:<refund id>`, pointing at the record it reverses.

    Exactly once: the reversal is unique per record (`reverses`) and per reference; a retry
    returns the first one. None when the purchase's sale was never recorded (nothing to take
    back). The available revenue never goes below zero (`available_revenue` clamps it): when
    the revenue was already spent on buys, the deficit is made up by the next revenue first.
    """
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise ValidationError({"refund_id": ValidationError(f"Unknown refund {refund_id}.", code="unknown_refund")})
    original = Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                      external_ref=pack_sale_ref(refund.purchase_id)).first()
    if original is None:
        return None
    existing = Revenue.objects.filter(reverses=original).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            record = Revenue.objects.create(
                source=Revenue.Source.PACK_SALE, amount=-original.amount, currency=original.currency,
                rate_to_zar=original.rate_to_zar, amount_zar=-original.amount_zar,
                external_ref=refund_ref(refund.pk), reverses=original)
            revenue_totals_apply(amount_zar=record.amount_zar, count=1)
    except IntegrityError:  # a concurrent retry reversed it first
        return Revenue.objects.get(reverses=original)
    logger.info("revenue %s reversed by %s (refund %s): %s ZAR", original.pk, record.pk, refund.pk,
                record.amount_zar)
    return record


def pack_sale_reversals_sweep(*, older_than_minutes: int = 5, limit: int = 500) -> int:
    """Reverse the recorded pack-sale revenue of refunds that have no reversal after some
    minutes (a lost message). One query finds them (an anti-join on the references)."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    ids = list(Refund.objects.filter(created_at__lt=cutoff, purchase__kind__in=Purchase.COUNTED_KINDS)
               .filter(Exists(Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                                     external_ref=pack_sale_ref(OuterRef("purchase_id")))))
               .exclude(Exists(Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                                      external_ref=refund_ref(OuterRef("pk")))))
               .order_by("id").values_list("id", flat=True)[:limit])
    done = 0
    for refund_id in ids:
        try:
            done += revenue_reverse_pack_sale(refund_id=refund_id) is not None
        except Exception:  # one bad row must not stop the sweep; logged, retried next time
            logger.exception("tokens: reversing the pack-sale revenue of refund %s failed", refund_id)
    return done


# --- pack sales that cannot be lost ------------------------------------------------------------

def pack_sales_record(*, purchase_ids) -> int:
    """Record the pack-sale revenue of these purchases, once: what the on-commit task, the
    sweeper and the repair command all run.

    The purchase rows are locked first (in id order): a refund locks its purchase too, so a
    purchase is either recorded before its refund commits (and that refund's reversal then
    finds the record) or seen refunded here and skipped -- never recorded after a reversal
    that found nothing. Then `revenue_record_pack_sales`: counted purchases only, the ones
    already recorded skipped, the rest in one INSERT (ON CONFLICT DO NOTHING: a racing task
    or sweeper inserts the same reference once). Returns how many were missing at the look-up.
    """
    ids = sorted({int(pk) for pk in purchase_ids})
    if not ids:
        return 0
    with transaction.atomic():
        purchases = list(Purchase.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("id"))
        return revenue_record_pack_sales(purchases=purchases)


def pack_sales_missing(*, older_than_minutes: float = 5, limit: int = 500, after_id: int = 0,
                       up_to: int | None = None) -> list[int]:
    """Ids of counted, unrefunded purchases older than ``older_than_minutes`` that have no
    pack-sale revenue, in id order, at most ``limit``, with ``after_id < id <= up_to``: one
    anti-join (NOT EXISTS on the reference, served by the unique index on (source, external_ref))."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    rows = Purchase.objects.filter(kind__in=Purchase.COUNTED_KINDS, refunded_at__isnull=True,
                                   created_at__lt=cutoff, pk__gt=after_id)
    if up_to is not None:
        rows = rows.filter(pk__lte=up_to)
    if not getattr(settings, "TOKENS_LEGACY_PURCHASES_ARE_REVENUE", True):
        rows = rows.exclude(kind=Purchase.Kind.LEGACY)
    rows = rows.exclude(Exists(Revenue.objects.filter(source=Revenue.Source.PACK_SALE,
                                                      external_ref=pack_sale_ref(OuterRef("pk")))))
    return list(rows.order_by("id").values_list("id", flat=True)[:limit])


SWEEP_BATCH = 100


def pack_sales_sweep(*, older_than_minutes: float = 5, limit: int = 500) -> int:
    """The beat sweeper: the pack-sale revenue of counted purchases still missing it after some
    minutes (a lost task, no exchange rate then), in batches of ``SWEEP_BATCH``. Returns how
    many were recorded (one failing batch is logged and left for the next sweep).

    It looks only above the high-water mark (``tokens.pack_sales_mark``), which it then moves
    up when that is safe: a sweep with nothing missing reads the recent purchases only."""
    mark = pack_sales_mark()
    ids = pack_sales_missing(older_than_minutes=older_than_minutes, limit=limit, after_id=mark)
    done = 0
    for i in range(0, len(ids), SWEEP_BATCH):
        try:
            done += pack_sales_record(purchase_ids=ids[i:i + SWEEP_BATCH])
        except Exception:  # one bad batch must not stop the sweep; logged, retried next time
            logger.exception("tokens: recording the pack-sale revenue of purchases %s…%s failed", ids[i],
                             ids[min(i + SWEEP_BATCH, len(ids)) - 1])
    if ids:
        logger.warning("tokens: %d purchase(s) were missing their pack-sale revenue; %d recorded now", len(ids),
                       done)
    pack_sales_mark_advance(grace=timedelta(minutes=older_than_minutes), first_missing=_first_missing)
    return done


def _first_missing(after_id: int, up_to: int) -> int | None:
    ids = pack_sales_missing(older_than_minutes=0, limit=1, after_id=after_id, up_to=up_to)
    return ids[0] if ids else None
