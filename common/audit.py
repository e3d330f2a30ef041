"""The audit trail in the admin (django-simple-history): the plan, the settings and the
withdrawals keep a historical row per change (who, when, every field before and after), shown on
each object's *History* page with the fields that changed.

History is read, never written back: ``AuditAdmin`` shows a past version but refuses to save it
(simple-history's revert form would save the old row directly, past the services that validate
and audit the change). Changes go through the ordinary forms and the services.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from common import display
from common.money import MONEY_DECIMAL_PLACES

BASELINE_REASON = "history starts"  # the change reason of `history_baseline`'s rows


def is_fraction_field(field) -> bool:
    """A rate: a decimal column with one digit before the point (``0.080000``, ``0.1000``)."""
    return isinstance(field, models.DecimalField) and field.max_digits - field.decimal_places <= 1


def is_money_field(field) -> bool:
    """A money column (``common.money.MoneyField``: 8 decimal places)."""
    return isinstance(field, models.DecimalField) and field.decimal_places == MONEY_DECIMAL_PLACES


def audit_value(field, value):
    """How a history page shows a field's value: rates as percentages, money with its separators
    and without the column's trailing zeros (``1,500`` · ``0.001``), anything else unchanged."""
    if value is None or not isinstance(value, Decimal):
        return value
    if is_fraction_field(field):
        return display.rate(value, places=4)
    if is_money_field(field):
        return display.money(value) if value == value.quantize(display.CENT) else f"{value.normalize():,f}"
    return value


class AuditContextHelper(HistoricalRecordContextHelper):
    """simple-history's hook for the "Changes" column (before → after) of the history page."""

    def prepare_delta_change_value(self, change, value):
        value = super().prepare_delta_change_value(change, value)
        try:
            field = self.model._meta.get_field(change.field)
        except FieldDoesNotExist:
            return value
        return audit_value(field, value)


class DecimalInput(forms.NumberInput):
    """A decimal setting as a person writes it: ``200`` not ``200.00000000``, ``0.04`` not
    ``0.040000``; a rate (``percent=True``) also says what it is as a percentage (``= 4%``)."""

    def __init__(self, attrs=None, *, percent: bool = False):
        super().__init__(attrs)
        self.percent = percent

    def format_value(self, value):
        if isinstance(value, Decimal) and value.is_finite():
            return f"{value.normalize():f}"
        return super().format_value(value)

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        if self.percent and isinstance(value, Decimal) and value.is_finite():
            html += format_html(' <span class="decimal-hint">= {}</span>', display.rate(value, places=4))
        return html


class AuditAdmin(SimpleHistoryAdmin):
    history_list_per_page = 50
    object_history_list_template = "admin/audit/object_history_list.html"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.DecimalField) and "widget" not in kwargs:
            kwargs["widget"] = DecimalInput(percent=is_fraction_field(db_field))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_historical_record_context_helper(self, request, historical_record):
        return AuditContextHelper(self.model, historical_record)

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied("A past version is shown, never saved back.")
        return super().history_form_view(request, object_id, version_id, extra_context)


def history_baseline(apps, app_label: str, model_name: str, *, batch: int = 2000) -> int:
    """For a data migration: one "created" history row per existing row of a model whose history
    starts now, so its first change later shows what it was before. Rows that already have
    history are skipped. Works on the migration's model state (``apps``)."""
    from django.utils import timezone

    model = apps.get_model(app_label, model_name)
    historical = apps.get_model(app_label, f"Historical{model_name}")
    pk = model._meta.pk.attname
    copied = [f.attname for f in historical._meta.concrete_fields if not f.name.startswith("history_")]
    has_history = set(historical.objects.values_list(pk, flat=True).distinct())
    now, rows, made = timezone.now(), [], 0
    for obj in model.objects.order_by(pk).iterator(chunk_size=batch):
        if getattr(obj, pk) in has_history:
            continue
        rows.append(historical(**{name: getattr(obj, name) for name in copied}, history_date=now,
                               history_type="+", history_change_reason=BASELINE_REASON))
        if len(rows) >= batch:
            made += len(historical.objects.bulk_create(rows))
            rows = []
    return made + len(historical.objects.bulk_create(rows))
