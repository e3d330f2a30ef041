"""`/health/` reports each dependency, and each one down when it is."""

import pytest
from django.core.cache import cache

from common.tasks import HEARTBEAT_KEY, beat_heartbeat_task
from config import health

pytestmark = pytest.mark.django_db


@pytest.fixture
def beating():
    beat_heartbeat_task()
    yield
    cache.delete(HEARTBEAT_KEY)


def test_all_up_is_200(client, beating, settings):
    settings.CELERY_BROKER_URL = "memory://"
    r = client.get("/health/")
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ok" and set(body["checks"]) == {"database", "broker", "chain", "beat"}
    assert all(c["ok"] for c in body["checks"].values())


def test_the_broker_down_is_503(client, beating, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    r = client.get("/health/")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert not checks["broker"]["ok"] and checks["broker"]["error"]
    assert checks["database"]["ok"] and checks["beat"]["ok"]


def test_beat_without_a_recent_heartbeat_is_down(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    cache.delete(HEARTBEAT_KEY)
    r = client.get("/health/")
    assert r.status_code == 503 and r.json()["checks"]["beat"]["error"] == "no heartbeat from beat yet"
    cache.set(HEARTBEAT_KEY, "2020-01-01T00:00:00+00:00")
    assert "ago" in client.get("/health/").json()["checks"]["beat"]["error"]
    beat_heartbeat_task()
    assert client.get("/health/").json()["checks"]["beat"]["ok"]
    cache.delete(HEARTBEAT_KEY)


def test_the_chain_down_is_503(client, beating, settings):
    """A real client for a node that does not answer (nothing listens on port 1)."""
    settings.CELERY_BROKER_URL = "memory://"
    from tokens.chain.client import ChainClient
    from tokens.chain.config import ChainConfig
    from tokens.chain.runtime import chain_client_set

    address = "0x" + "11" * 20
    chain_client_set(ChainClient(ChainConfig(provider_uri="http://127.0.0.1:1", router_address=address,
                                             azr_token_address=address, zar_token_address=address,
                                             treasury_private_key="0x" + "22" * 32, request_timeout=2)))
    try:
        r = client.get("/health/")
    finally:
        chain_client_set(None)
    assert r.status_code == 503, r.json()
    checks = r.json()["checks"]
    assert not checks["chain"]["ok"] and checks["chain"]["error"]
    assert checks["database"]["ok"] and checks["broker"]["ok"]


def test_the_database_down_is_503_and_never_a_500(client, beating, settings, monkeypatch):
    """The database cannot be stopped under the test's feet: its check is made to fail as a
    refused connection does (the boundary), and the report must say so, not crash."""
    settings.CELERY_BROKER_URL = "memory://"
    from django.db import OperationalError

    def refused():
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", refused)
    r = client.get("/health/")
    assert r.status_code == 503 and "connection refused" in r.json()["checks"]["database"]["error"]
