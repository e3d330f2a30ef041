"""The cheapest option (compensation-plan §7): the one home of this choice.

Pure (no query, no Django), so both `purchases.selectors.cheapest_active_option` (over
`purchases.models.Option` rows) and `mlm.rules` (over its plain `OptionInfo`) call it
without `purchases` importing `mlm`. Anything with `unit_price` and `id` will do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


class Priced(Protocol):
    id: int

    @property
    def unit_price(self): ...


P = TypeVar("P", bound=Priced)


def cheapest(options: Iterable[P]) -> P | None:
    """The option with the lowest unit price (pack price / pack shares); ties: the lowest id.
    None when there is none."""
    return min(options, key=lambda o: (o.unit_price, o.id), default=None)
