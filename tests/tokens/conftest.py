"""Fixtures of the tokens tests: a real embedded chain per test, and no real sleeping."""

from __future__ import annotations

import pytest

from tokens.chain import runtime
from tokens.chain.embedded import EmbeddedChain, build_embedded_chain


@pytest.fixture
def chain() -> EmbeddedChain:
    """A fresh embedded chain (~0.3 s), used by the services for the test's duration."""
    chain = build_embedded_chain()
    runtime.chain_client_set(chain.client())
    yield chain
    runtime.chain_client_set(None)


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
