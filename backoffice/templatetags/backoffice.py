"""Template filters over ``common.display``: ``{% load backoffice %}`` then
``{{ value|money:"USD" }}``, ``{{ value|tokens:"AZR" }}``, ``{{ value|rate }}``, ``{{ fee|gwei }}``, ``{{ dt|when }}``,
``{{ hash|short_hash:url }}``."""

from django import template

from common import display

register = template.Library()


@register.filter
def money(value, currency=None):
    return display.money(value, currency)


@register.filter
def tokens(value, symbol=None):
    return display.tokens(value, symbol)


@register.filter
def gwei(value):
    return display.gwei(value)


@register.filter
def rate(value):
    return display.rate(value)


@register.filter
def when(value):
    return display.when(value)


@register.filter
def short_hash(value, url=None):
    return display.short_hash(value, url)


@register.filter
def summary_label(key):
    """A member-summary key (``pv``, ``monthly_pv``, ``fv``…) as the member page labels it."""
    from accounts.member_page import SUMMARY_LABELS

    return SUMMARY_LABELS.get(key, (str(key).replace("_", " "),))[0]


@register.filter
def choice_label(value, field: str):
    """A stored choice as its label: ``{{ b.kind|choice_label:"mlm.Bonus.kind" }}`` →
    ``System compression (root)``; an unknown value is shown as it is."""
    from django.apps import apps

    app_label, model, name = field.split(".")
    choices = dict(apps.get_model(app_label, model)._meta.get_field(name).flatchoices)
    return choices.get(value, value)


@register.filter
def history_column(record, column: str):
    """A history page's extra column (``history_list_display``) of one version."""
    return getattr(record, column, "")
