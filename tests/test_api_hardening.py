"""The API layer under hostile input: request limits, error codes, query bounds, throttles,
the error responses in the schema, and the token admin (issue 8: items 1, 2, 5, 6, 10, 11)."""

from __future__ import annotations

import json
import logging
import os
import runpy
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView
from rest_framework_api_key.models import APIKey

from common.api import exception_handler
from common.errors import ConflictError, IdempotencyConflict
from common.parsers import json_nesting_exceeds
from tests.factories import OptionFactory, UserFactory

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parent.parent
TOKEN_URL = "/api/auth/token/"


def assert_error_shape(body: dict, code: str):
    assert set(body) >= {"message", "code", "errors", "codes"}, body
    assert body["message"] and body["code"] == code, body


# --- 1. a request never crashes a process ---------------------------------------------------

def test_recursion_limit_is_sane_after_the_chain_libraries_are_imported(settings):
    assert "py_ecc" in sys.modules and "web3" in sys.modules  # they raise it to 100,000 on import
    assert sys.getrecursionlimit() == settings.PYTHON_RECURSION_LIMIT <= 10_000


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_over_deep_json_is_a_400_in_the_error_shape(api_client, depth):
    body = "[" * depth + "]" * depth
    r = api_client.post(TOKEN_URL, data=body, content_type="application/json")
    assert r.status_code == 400 and r["Content-Type"] == "application/json"
    assert_error_shape(r.json(), "json_too_deep")
    assert "32 levels" in r.json()["message"]


def test_json_at_the_depth_limit_is_parsed(api_client):
    # 32 levels is allowed: the body reaches the serializer, which wants an object.
    r = api_client.post(TOKEN_URL, data="[" * 32 + "]" * 32, content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "invalid"
    nested = {"email": "a@example.com", "password": "x", "extra": json.loads("[" * 30 + "]" * 30)}
    assert api_client.post(TOKEN_URL, nested, format="json").json()["code"] == "authentication_failed"


@pytest.mark.parametrize("text, deeper_than_4", [
    ('{"a": [1, {"b": [2]}]}', False),
    ('{"a": "[[[[[[[[[[[[[[[["}', False),  # brackets in strings do not count
    ('{"a": "\\"[[[[[[[[[[[[[", "b": 1}', False),  # nor after an escaped quote
    ('[[[[[1]]]]]', True),
    ('[[[[[', True),  # unbalanced: the parser would still recurse into them
    ('[1, [2, [3, [4]]]] [[[[[', True),
    ('[[1], [2], [3], [4], [5], [6]]', False),  # many brackets, shallow
    ('"' + '\\"' * 100 + "[[[[[[", False),  # an unterminated string swallows the rest
])
def test_nesting_scan(text, deeper_than_4):
    assert json_nesting_exceeds(text, 4) is deeper_than_4


def test_oversized_body_is_a_413_in_the_error_shape(api_client, settings):
    body = json.dumps({"email": "a@example.com", "password": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    r = api_client.post(TOKEN_URL, data=body, content_type="application/json")
    assert r.status_code == 413 and r["Content-Type"] == "application/json"
    assert_error_shape(r.json(), "request_too_large")


def test_a_body_just_under_the_limit_is_read(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = json.dumps({"email": "a@example.com", "password": "x" * 3000})
    assert api_client.post(TOKEN_URL, data=body, content_type="application/json").status_code == 400
    body = json.dumps({"email": "a@example.com", "password": "x" * 5000})
    assert api_client.post(TOKEN_URL, data=body, content_type="application/json").status_code == 413


def test_errors_outside_drf_views_are_json_under_api(client):
    for url in ("/api/nope/", "/api/purchases/abc/", "/api/purchases/-1/"):
        r = client.get(url)
        assert r.status_code == 404 and r["Content-Type"] == "application/json", url
        assert_error_shape(r.json(), "not_found")
    assert "text/html" in client.get("/nope/")["Content-Type"]  # the rest of the site is unchanged


WEB_AND_WORKER = textwrap.dedent("""
    import io, os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    from django.core.wsgi import get_wsgi_application
    application = get_wsgi_application()            # what gunicorn loads: config.wsgi
    print("imported", "py_ecc" in sys.modules, "eth" in sys.modules)
    print("web limit", sys.getrecursionlimit())
    body = ("[" * 100000 + "]" * 100000).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/auth/token/", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "HTTP_HOST": "localhost", "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}
    answer = []
    content = b"".join(application(environ, lambda status, headers, exc=None: answer.append(status)))
    print("status", answer[0])
    print("body", content.decode())
    # A Celery pool process: the worker signals put the limit back even if something raised it.
    import config.celery
    from celery.signals import worker_process_init
    sys.setrecursionlimit(100000)
    worker_process_init.send(sender=None)
    print("worker limit", sys.getrecursionlimit())
""")


def test_a_100000_deep_body_does_not_kill_the_web_process():
    """The real path in a fresh process (config.wsgi with every app, the chain libraries
    imported): it used to die with SIGSEGV in the C JSON parser."""
    env = {**os.environ, "CACHE_URL": "locmem://", "DJANGO_ALLOW_INSECURE_KEY": "1", "PYTHONPATH": str(BASE_DIR)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "-c", WEB_AND_WORKER], cwd=BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["imported"] == "True True"
    assert int(lines["web"].split()[-1]) <= 10_000
    assert lines["status"] == "400 Bad Request"
    assert json.loads(lines["body"])["code"] == "json_too_deep"
    assert int(lines["worker"].split()[-1]) <= 10_000


# --- 2. query parameters never 500 ----------------------------------------------------------

@pytest.fixture
def member(root):
    return UserFactory(balance="100")


@pytest.fixture
def member_api(member, member_client):
    return member_client(member)


@pytest.fixture
def staff_api(member_client):
    return member_client(UserFactory(is_staff=True, is_superuser=True))


@pytest.mark.parametrize("month", ["2025-13", "2025-00", "0000-01", "2025-1", "25-01", "2025-001", "٢٠٢٥-٠١",
                                   "２０２５-０１", "2025_01", "3000-01", "abc"])
def test_bad_bonus_month_is_a_400_that_says_yyyy_mm(member_api, month):
    r = member_api.get("/api/mlm/me/bonuses/", {"month": month})
    assert r.status_code == 400, month
    assert_error_shape(r.json(), "invalid_month")
    assert "YYYY-MM" in r.json()["message"] and r.json()["codes"] == {"month": ["invalid_month"]}


@pytest.mark.parametrize("month", ["2025-01", "2025-12", "1900-01", "2999-12"])
def test_good_bonus_month(member_api, month):
    r = member_api.get("/api/mlm/me/bonuses/", {"month": month})
    assert r.status_code == 200 and r.json()["count"] == 0


@pytest.mark.parametrize("query, field, code", [
    ("offset=9223372036854775808", "offset", "invalid_offset"),
    ("offset=1000000001", "offset", "invalid_offset"),
    ("offset=-1", "offset", "invalid_offset"),
    ("offset=abc", "offset", "invalid_offset"),
    ("offset=" + "9" * 5000, "offset", "invalid_offset"),  # past Python's int-from-str limit
    ("limit=0", "limit", "invalid_limit"),
    ("limit=501", "limit", "invalid_limit"),
    ("limit=１０", "limit", "invalid_limit"),
])
def test_pagination_bounds_are_400s(member_api, query, field, code):
    for url in ("/api/me/ledger/", "/api/purchases/", "/api/mlm/me/bonuses/", "/api/mlm/me/notifications/"):
        r = member_api.get(f"{url}?{query}")
        assert r.status_code == 400, url
        assert_error_shape(r.json(), code)
        assert r.json()["codes"] == {field: [code]}


def test_format_query_parameter_is_not_a_renderer_switch(member_api):
    # `?format=<anything>` used to pick a renderer, and an unknown one was an undocumented 404.
    assert member_api.get("/api/me/?format=null").status_code == 200
    assert member_api.get("/api/me/?format=api").json()["id"]


def test_pagination_within_bounds(member_api):
    body = member_api.get("/api/me/ledger/?limit=500&offset=1000000000").json()
    assert body["count"] == 1 and body["results"] == []
    assert len(member_api.get("/api/me/ledger/?limit=&offset=").json()["results"]) == 1  # empty: defaults


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "offset=1000000001", "offset=-1", "limit=501"])
def test_buy_order_history_bounds_are_400s(staff_api, query):
    r = staff_api.get(f"/api/tokens/buy-orders/?{query}")
    assert r.status_code == 400 and r.json()["code"] in ("max_value", "min_value")


def test_buy_order_history_largest_offset(staff_api):
    # Offsets stop at 10,000 (an OFFSET walks every skipped row); deeper pages use the cursor.
    r = staff_api.get("/api/tokens/buy-orders/?offset=10000")
    assert r.status_code == 200 and r.json()["results"] == []
    r = staff_api.get("/api/tokens/buy-orders/?offset=1000000000")
    assert r.status_code == 400 and r.json()["code"] == "offset_too_deep" and "cursor" in r.json()["message"]


# --- 5. error codes reach the client --------------------------------------------------------

def handle(exc):
    return exception_handler(exc, {})


@pytest.mark.parametrize("exc, status, code, errors, codes", [
    (ValidationError("Not enough.", code="insufficient_funds"), 400, "insufficient_funds",
     {"non_field_errors": ["Not enough."]}, {"non_field_errors": ["insufficient_funds"]}),
    # Django drops a code given with a dict; the API keeps it.
    (ValidationError({"option": "Not for sale."}, code="inactive_option"), 400, "inactive_option",
     {"option": ["Not for sale."]}, {"option": ["inactive_option"]}),
    (ValidationError({"a": ValidationError("A.", code="code_a"), "b": ["B1.", "B2."]}), 400, "code_a",
     {"a": ["A."], "b": ["B1.", "B2."]}, {"a": ["code_a"], "b": ["invalid", "invalid"]}),
    (ValidationError("%(n)s left.", code="few", params={"n": 3}), 400, "few",
     {"non_field_errors": ["3 left."]}, {"non_field_errors": ["few"]}),
    (ValidationError({"__all__": "Both."}), 400, "invalid", {"non_field_errors": ["Both."]},
     {"non_field_errors": ["invalid"]}),
    (ConflictError({"refund": "Already refunded."}, code="already_refunded"), 409, "already_refunded",
     {"refund": ["Already refunded."]}, {"refund": ["already_refunded"]}),
    (IdempotencyConflict({"idempotency_key": "Used with another body."}, code="idempotency_conflict"), 422,
     "idempotency_conflict", {"idempotency_key": ["Used with another body."]},
     {"idempotency_key": ["idempotency_conflict"]}),
    (serializers.ValidationError({"items": [{"amount": [ErrorDetail("Too big.", code="max_value")]}, {}]}), 400,
     "max_value", {"items.0.amount": ["Too big."]}, {"items.0.amount": ["max_value"]}),
])
def test_exception_handler_carries_codes(exc, status, code, errors, codes):
    response = handle(exc)
    assert response.status_code == status
    assert response.data["code"] == code
    assert response.data["errors"] == errors and response.data["codes"] == codes
    first_field = next(iter(errors))
    expected = errors[first_field][0]
    assert response.data["message"] == (expected if first_field == "non_field_errors"
                                        else f"{first_field}: {expected}")


def test_service_codes_reach_the_client(member_api, member):
    option = OptionFactory(pack_price=Decimal("500"))
    r = member_api.post("/api/purchases/", {"option": option.pk, "packs": 1}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "insufficient_funds"
    option.is_active = False
    option.save()
    r = member_api.post("/api/purchases/", {"option": option.pk}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "inactive_option"
    assert r.json()["codes"] == {"option": ["inactive_option"]}


def test_drf_field_codes_reach_the_client(member_api):
    r = member_api.post("/api/purchases/", {"packs": 0}, format="json")
    assert r.status_code == 400
    assert r.json()["codes"] == {"option": ["required"], "packs": ["min_value"]}
    assert r.json()["code"] == "required" and r.json()["message"].startswith("option: ")


def test_reference_conflict_code(member):
    _, key = APIKey.objects.create_key(name="payments")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    url = "/api/service/deposits/"
    assert client.post(url, {"member_id": member.pk, "amount": "5", "reference": "pay-1"},
                       format="json").status_code == 201
    r = client.post(url, {"member_id": member.pk, "amount": "6", "reference": "pay-1"}, format="json")
    assert r.status_code in (400, 422) and r.json()["code"] == "reference_conflict"


@pytest.mark.parametrize("authorization", [None, "Api-Key", "Api-Key nope.nope", "Token abc", "Api-Key a\x00b",
                                           "Api-Key " + "x" * 5000])
def test_missing_or_bad_api_key_says_an_api_key_is_needed(api_client, authorization):
    if authorization:
        api_client.credentials(HTTP_AUTHORIZATION=authorization)
    for url in ("/api/service/deposits/", "/api/tokens/revenue/"):
        r = api_client.post(url, {"amount": "1"}, format="json")
        assert r.status_code == 403, url
        assert_error_shape(r.json(), "api_key_required")
        assert "Authorization: Api-Key <key>" in r.json()["message"]


def test_revoked_api_key_is_refused(api_client):
    api_key, key = APIKey.objects.create_key(name="old", revoked=True)
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert api_client.post("/api/tokens/revenue/", {}, format="json").json()["code"] == "api_key_required"


def test_not_authenticated_code(api_client):
    r = api_client.get("/api/me/")
    assert r.status_code == 401 and r.json()["code"] == "not_authenticated"


def test_parse_error_code(api_client):
    r = api_client.post(TOKEN_URL, data="{nope", content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "parse_error"


# --- 6. throttles ---------------------------------------------------------------------------

@pytest.fixture
def rates(settings):
    """Small rates for the throttle tests (the throttle reads them on every request)."""
    from django.core.cache import cache

    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
            "anon": "1000/minute", "user": "1000/minute", "service": "1000/minute", **rates}}

    cache.clear()  # the database cache, inside the test's transaction
    return set_rates


def _service_client(name):
    _, key = APIKey.objects.create_key(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_services_are_throttled_per_api_key_not_as_anonymous(rates, member):
    rates(service="3/minute", anon="1/minute")
    first, second = _service_client("payments"), _service_client("revenue")
    body = {"source": "other", "amount": "1"}
    answers = [first.post("/api/tokens/revenue/", body, format="json").status_code for _ in range(4)]
    assert answers == [201, 201, 201, 429]
    # Another key has its own budget; the anonymous rate (1/minute) never applied to keys.
    assert second.post("/api/tokens/revenue/", body, format="json").status_code == 201
    deposit = {"member_id": member.pk, "amount": "1", "reference": "r-1"}
    assert second.post("/api/service/deposits/", deposit, format="json").status_code == 201
    r = first.post("/api/service/deposits/", {**deposit, "reference": "r-2"}, format="json")
    assert r.status_code == 429 and int(r["Retry-After"]) > 0
    assert_error_shape(r.json(), "throttled")


def test_members_are_throttled_per_user(rates, member_client):
    rates(user="2/minute", anon="1/minute")
    alice, bob = member_client(UserFactory()), member_client(UserFactory())
    assert [alice.get("/api/me/").status_code for _ in range(3)] == [200, 200, 429]
    assert bob.get("/api/me/").status_code == 200


def test_anonymous_clients_are_throttled_per_ip(rates, api_client):
    rates(anon="2/minute")
    statuses = [api_client.get("/api/docs/", REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert api_client.get("/api/docs/", REMOTE_ADDR="10.0.0.2").status_code == 200


def test_throttle_counters_live_in_the_shared_cache(rates, member_client, settings):
    """Not in per-process memory: by default the database cache, whose rows every process sees."""
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    rates(user="5/minute")
    member_client(UserFactory()).get("/api/me/")
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM django_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert any("throttle_user_user:" in key for key in keys), keys


@pytest.mark.redis
def test_throttle_counters_in_redis_when_configured(rates, member_client, settings):
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": os.environ["TEST_REDIS_URL"], "KEY_PREFIX": "azr-test"}}
    rates(user="2/minute")
    user = UserFactory()
    alice = member_client(user)
    try:
        assert [alice.get("/api/me/").status_code for _ in range(3)] == [200, 200, 429]
        assert len(cache.get(f"throttle_user_user:{user.pk}")) == 2
    finally:
        cache.delete(f"throttle_user_user:{user.pk}")  # never FLUSHDB a shared Redis


def test_a_broken_cache_lets_requests_through_and_logs(rates, member_client, monkeypatch, caplog):
    class BrokenCache:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

    monkeypatch.setattr("common.throttles.ApiRateThrottle.cache", BrokenCache())
    with caplog.at_level(logging.ERROR, logger="common.throttles"):
        assert member_client(UserFactory()).get("/api/me/").status_code == 200
    assert "Throttle cache unavailable" in caplog.text


@pytest.mark.parametrize("env, backend", [
    ({}, "django.core.cache.backends.db.DatabaseCache"),
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/3"}, "django.core.cache.backends.redis.RedisCache"),
    ({"REDIS_URL": "redis://cache:6379/0"}, "django.core.cache.backends.redis.RedisCache"),
    ({"CACHE_URL": "db://", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/3"},
     "django.core.cache.backends.db.DatabaseCache"),
    ({"CACHE_URL": "locmem://"}, "django.core.cache.backends.locmem.LocMemCache"),
])
def test_cache_follows_the_environment(monkeypatch, env, backend):
    for name in ("CACHE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = runpy.run_path(str(BASE_DIR / "config" / "settings.py"))
    assert found["CACHES"]["default"]["BACKEND"] == backend
    if "redis" in backend:
        assert found["CACHES"]["default"]["LOCATION"] == (env.get("REDIS_URL") or env["CELERY_BROKER_URL"])


# --- 10. the schema documents the errors ----------------------------------------------------

@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _responses(schema, path, method):
    return schema["paths"][path][method]["responses"]


@pytest.mark.parametrize("path, method, statuses, absent", [
    ("/api/me/", "get", {"200", "401", "403", "429"}, {"400", "404", "422"}),
    ("/api/me/ledger/", "get", {"200", "400", "401", "403", "429"}, {"404"}),
    ("/api/purchases/{id}/", "get", {"200", "401", "403", "404", "429"}, {"422"}),
    ("/api/purchases/", "post", {"200", "201", "400", "401", "403", "413", "415", "422", "429"}, {"404"}),
    ("/api/service/deposits/", "post", {"201", "400", "403", "422", "429"}, {"401"}),  # API key: 403
    ("/api/auth/token/", "post", {"200", "400", "413", "415", "429"}, {"401", "403", "422"}),
    ("/api/tokens/buy-orders/execute/", "post", {"200", "400", "401", "403", "409", "502"}, set()),
])
def test_schema_documents_the_errors_each_operation_can_answer(schema, path, method, statuses, absent):
    responses = _responses(schema, path, method)
    assert statuses <= set(responses), sorted(responses)
    assert not absent & set(responses), sorted(responses)


def test_error_responses_have_the_error_body(schema):
    responses = _responses(schema, "/api/purchases/", "post")
    for status in ("400", "401", "403", "413", "415", "422", "429"):
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}
    assert "Retry-After" in responses["429"]["headers"]
    error = schema["components"]["schemas"]["ApiError"]
    assert set(error["required"]) == {"message", "code", "errors"} and "codes" in error["properties"]


def test_every_operation_documents_429_and_auth_errors(schema):
    for url, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "429" in operation["responses"], (method, url)
            if url not in ("/api/auth/register/", "/api/auth/token/"):
                assert {"401", "403"} & set(operation["responses"]), (method, url)


class ThingInput(serializers.Serializer):
    name = serializers.CharField()


class DeclaringView(APIView):
    """A view the schema has never seen: declares a 409 by attribute and a 404 without a body."""

    error_statuses = (409,)

    @extend_schema(request=ThingInput, responses={200: None, 404: OpenApiResponse(description="Gone.")})
    def post(self, request):
        return Response()


def test_autoschema_handles_a_new_view_generically():
    generated = SchemaGenerator(patterns=[path("api/things/", DeclaringView.as_view())]).get_schema(public=True)
    responses = generated["paths"]["/api/things/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "429"} <= set(responses)
    assert responses["404"]["description"] == "Gone." and "content" in responses["404"]


# --- 11. the token admin hides the tokens ---------------------------------------------------

def test_token_admin_masks_keys_and_does_not_search_by_them(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    token = Token.objects.create(user=UserFactory(email="holder@example.com"))
    client.force_login(operator)
    page = client.get("/admin/common/maskedtoken/").content.decode()
    assert token.key not in page and f"{token.key[:6]}…" in page and "holder@example.com" in page
    assert "holder@example.com" not in client.get(f"/admin/common/maskedtoken/?q={token.key}").content.decode()
    assert "holder@example.com" in client.get("/admin/common/maskedtoken/?q=holder").content.decode()
    change = client.get(f"/admin/common/maskedtoken/{token.user_id}/change/")
    assert change.status_code == 200 and token.key not in change.content.decode()
    delete = client.get(f"/admin/common/maskedtoken/{token.user_id}/delete/")
    assert delete.status_code == 200 and token.key not in delete.content.decode()
    assert client.post(f"/admin/common/maskedtoken/{token.user_id}/delete/", {"post": "yes"}).status_code == 302
    assert not Token.objects.filter(user_id=token.user_id).exists()  # revoked
    assert token.key not in LogEntry.objects.get().object_repr  # the admin log keeps no key either
    assert client.get("/admin/common/maskedtoken/add/").status_code == 403
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404  # DRF's page is gone
