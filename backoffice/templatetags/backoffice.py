"""Template filters over ``common.display``: ``{% load backoffice %}`` then
``{{ value|money:"USD" }}``, ``{{ value|tokens:"AZR" }}``, ``{{ value|rate }}``, ``{{ dt|when }}``,
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
def rate(value):
    return display.rate(value)


@register.filter
def when(value):
    return display.when(value)


@register.filter
def short_hash(value, url=None):
    return display.short_hash(value, url)
