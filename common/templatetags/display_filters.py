"""`common.display` as template filters: ``{% load display_filters %}`` then
``{{ p.price|money }}``, ``{{ p.price|money:"USD" }}``, ``{{ qty|tokens }}``, ``{{ r|rate }}``,
``{{ dt|when }}``."""

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
def rate(value):
    return display.rate(value)


@register.filter
def when(value):
    return display.when(value)
