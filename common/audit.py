"""The audit trail in the admin (django-simple-history): the plan, the settings and the
withdrawals keep a historical row per change (who, when, every field before and after), shown on
each object's *History* page with the fields that changed.

History is read, never written back: ``AuditAdmin`` shows a past version but refuses to save it
(simple-history's revert form would save the old row directly, past the services that validate
and audit the change). Changes go through the ordinary forms and the services.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin


class AuditAdmin(SimpleHistoryAdmin):
    history_list_per_page = 50

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
                               history_type="+", history_change_reason="history starts"))
        if len(rows) >= batch:
            made += len(historical.objects.bulk_create(rows))
            rows = []
    return made + len(historical.objects.bulk_create(rows))
