"""Fixtures shared by every test folder."""

import os

import pytest
from django.db import connection

from config.celery import app as celery_app


def pytest_configure(config):
    # Unit tests run tasks eagerly; the real-worker tests turn this off for themselves.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


def pytest_collection_modifyitems(config, items):
    on_postgres = connection.vendor == "postgresql"
    has_redis = bool(os.environ.get("TEST_REDIS_URL"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (row locks); run `make test` with PostgreSQL up")
    skip_redis = pytest.mark.skip(reason="needs Redis (TEST_REDIS_URL); run `make test` with Redis up")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not has_redis:
            item.add_marker(skip_redis)


@pytest.fixture
def root(db):
    from accounts.selectors import system_root

    return system_root()


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def member_client():
    """`member_client(user)` → an APIClient authenticated with the member's token."""
    from rest_framework.authtoken.models import Token

    def make(user):
        from rest_framework.test import APIClient

        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture(autouse=True)
def _wall_clock(monkeypatch):
    """Swap deadlines count from the tests' wall clock, which ``time_travel`` moves with the
    embedded chain (``tests.chain_clock``)."""
    from tests import chain_clock
    from tokens.chain import runtime

    chain_clock.reset()
    monkeypatch.setattr(runtime, "wall_clock", chain_clock.now)


@pytest.fixture
def chain(request):
    """A fresh embedded chain (~0.3 s), used by the services for the test's duration; in a
    database test, with the price observations of a quiet window behind it (a TWAP exists)."""
    from tests.tokens.conftest import warm_twap
    from tokens.chain import runtime
    from tokens.chain.embedded import build_embedded_chain

    chain = build_embedded_chain()
    runtime.chain_client_set(chain.client())
    marker = request.node.get_closest_marker("django_db")
    if marker is not None or {"db", "transactional_db"} & set(request.fixturenames):
        transactional = bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
        request.getfixturevalue("transactional_db" if transactional or "transactional_db" in request.fixturenames
                                else "db")
        warm_twap(chain)
    yield chain
    runtime.chain_client_set(None)
