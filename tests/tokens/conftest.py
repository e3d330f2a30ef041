"""Fixtures of the tokens tests: a real embedded chain per test, and no real sleeping."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests import chain_clock
from tokens.chain import runtime
from tokens.chain.artifacts import load_artifact
from tokens.chain.embedded import EmbeddedChain
from tokens.chain.units import from_base_units, to_base_units

TWAP_WINDOW = 1800  # the default twap_window_seconds


def time_travel(chain: EmbeddedChain, seconds: int) -> int:
    """Move the embedded chain's clock ``seconds`` ahead and mine a block there; its timestamp.
    The tests' wall clock (swap deadlines) moves with it (``tests.chain_clock``)."""
    chain_clock.advance(seconds)
    now = chain.w3.eth.get_block("latest")["timestamp"]
    chain.w3.testing.timeTravel(now + seconds)
    chain.w3.testing.mine()
    return chain.w3.eth.get_block("latest")["timestamp"]


def warm_twap(chain: EmbeddedChain, window: int = TWAP_WINDOW) -> None:
    """One observation, then the clock a window ahead: a buy now has a TWAP to check against."""
    from tokens.observations import price_observe

    price_observe()
    time_travel(chain, window + 1)


def swap_zar_for_azr(chain: EmbeddedChain, zar: Decimal) -> int:
    """Someone else (the deployer account) buys AZR with ``zar`` ZAR on the pool; the AZR units it got."""
    return _swap(chain, chain.zar_token, chain.azr_token, to_base_units(zar, 18), mint=True)


def swap_azr_for_zar(chain: EmbeddedChain, units: int) -> int:
    """Someone else sells ``units`` AZR (base units it holds) back to the pool."""
    return _swap(chain, chain.azr_token, chain.zar_token, units, mint=False)


def move_spot(chain: EmbeddedChain, fraction: str) -> int:
    """Buy AZR so that the pool's mid price rises by about ``fraction``; the AZR units bought."""
    reserve_zar = chain.w3.eth.contract(address=chain.pair, abi=load_artifact("Pair").abi).functions \
        .getReserves().call()[0]
    grow = (Decimal(1) + Decimal(fraction)).sqrt() - 1  # the mid price goes as (1 + x/R)^2
    return swap_zar_for_azr(chain, from_base_units(int(reserve_zar * grow), 18).quantize(Decimal(1)))


def _swap(chain: EmbeddedChain, token_in: str, token_out: str, units: int, *, mint: bool) -> int:
    w3 = chain.w3
    who = w3.eth.accounts[0]
    abi = load_artifact("Token").abi
    source = w3.eth.contract(address=token_in, abi=abi)
    target = w3.eth.contract(address=token_out, abi=abi)
    router = w3.eth.contract(address=chain.router, abi=load_artifact("Router").abi)
    if mint:
        source.functions.mint(who, units).transact({"from": who, "gas": 200_000})
    source.functions.approve(chain.router, units).transact({"from": who, "gas": 200_000})
    before = target.functions.balanceOf(who).call()
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    router.functions.swapExactTokensForTokens(units, 0, [token_in, token_out], who, deadline).transact(
        {"from": who, "gas": 300_000})
    return target.functions.balanceOf(who).call() - before


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """The retry pauses asked for, instead of sleeping them."""
    asked: list[float] = []
    monkeypatch.setattr(runtime, "retry_sleep", asked.append)
    return asked


@pytest.fixture
def config(db):
    from tokens.selectors import buy_order_config

    return buy_order_config()
