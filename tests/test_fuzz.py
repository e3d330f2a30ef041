"""Fuzzing the whole API from its own OpenAPI schema (schemathesis), as a member, as staff
and as a payment service (API key).

Every operation of the schema gets `MAX_EXAMPLES` generated requests that fit the schema
(positive) and as many that break it (negative: wrong types, missing fields, out-of-range
values), through the real WSGI stack. The checks:
- `not_a_server_error`: no 5xx;
- `status_code_conformance`: every status answered is documented for the operation;
- `content_type_conformance`, `response_schema_conformance`: the body is what the schema says.

Bounded: derandomized (the same cases on every run, so CI is stable), no shrinking, a fixed
number of examples; the three roles take about 20 s on this machine. For a longer local
hunt: `FUZZ_EXAMPLES=200` (more cases), `FUZZ_RANDOM=1` (different cases each run).
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework_api_key.models import APIKey
from schemathesis import GenerationMode
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mlm.models import Bonus, Notification
from mlm.services import purchase_process
from purchases.services import purchase_create
from tests.factories import UserFactory
from tests.mlm.factories import buy, member, option

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"  # new cases each run (a local hunt), not CI's fixed ones


def openapi_document() -> dict:
    """The schema the API serves at /api/schema/, as JSON."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def load(document: dict):
    DOCUMENTED.update({(method.upper(), path): set(operation.get("responses", {}))
                       for path, operations in document["paths"].items() for method, operation in operations.items()})
    return schemathesis.openapi.from_dict(document)


@pytest.fixture(scope="module")
def api_schema():
    return load(openapi_document())


DOCUMENTED: dict[tuple[str, str], set[str]] = {}  # (METHOD, path) → documented statuses
UPSTREAM_FAILURES = {502, 503, 504}


def not_a_server_error(ctx, response, case):
    """No 5xx — except an upstream failure the operation documents (the buy-order execute
    answers 502 when the chain reverts or fails: the chain's answer, not a crash here)."""
    status = response.status_code
    documented = DOCUMENTED.get((case.operation.method.upper(), case.operation.path), set())
    if status >= 500 and not (status in UPSTREAM_FAILURES and str(status) in documented):
        raise ServerError(operation=case.operation.label, status_code=status)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def app():
    """The WSGI application, as a server runs it. Like Django's test client, it must not
    close the database connection after each request: the test's transaction lives on it."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def network(root):
    """A director with money, a downline member who bought (processed: the director has
    bonuses, notifications and a passive balance), a purchase of the director's own."""
    director = member(rank="director", balance="5000")
    child = member(director, balance="5000")
    opt = option("50", shares=1000)
    own = purchase_create(user=director, option=opt, packs=2)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):  # notifications are written after the commit
        for purchase in (own, buy(child, option("1000"))):
            purchase_process(purchase_id=purchase.pk)
    notification = Notification.objects.filter(user=director).first()
    assert notification is not None and Bonus.objects.filter(user=director).exists()
    return {"member": director, "option": opt, "purchase": own, "notification": notification}


def hints_for(network) -> dict[str, dict]:
    """Real ids for half of the positive cases, so they get past "unknown id" to the code
    behind it (the other fields stay generated)."""
    member = network["member"]
    return {
        "GET /api/purchases/{id}/": {"path_parameters": {"id": network["purchase"].pk}},
        "POST /api/mlm/me/notifications/{id}/read/": {"path_parameters": {"id": network["notification"].pk}},
        "POST /api/purchases/": {"body": {"option": network["option"].pk}},
        "POST /api/service/deposits/": {"body": {"member_id": member.pk}},
    }


def _hinted(strategy, hints: dict | None):
    if not hints:
        return strategy

    def apply(pair):
        case, use = pair
        if use:
            case.path_parameters = {**(case.path_parameters or {}), **hints.get("path_parameters", {})}
            if isinstance(case.body, dict):
                case.body = {**case.body, **hints.get("body", {})}
        return case

    return st.tuples(strategy, st.booleans()).map(apply)


@pytest.fixture
def chain():
    """The staff role may execute buy-orders: on a fresh embedded chain."""
    from tokens.chain import runtime
    from tokens.chain.embedded import build_embedded_chain

    runtime.chain_client_set(build_embedded_chain().client())
    yield
    runtime.chain_client_set(None)


def fuzz(api_schema, app, headers: dict[str, str], hints: dict[str, dict] | None = None) -> list[str]:
    """Runs every operation in both modes; returns one line per failing operation."""
    hints = hints or {}
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        # Negative cases need something to break; the credentials (Authorization, cookie) are ours.
        breakable = (len(operation.path_parameters) or len(operation.query) or len(operation.body)
                     or any(header.name.lower() != "authorization" for header in operation.headers))
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if breakable else (GenerationMode.POSITIVE,)
        for mode in modes:
            cache.clear()  # throttle counters: each operation starts with a fresh budget
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE:
                strategy = _hinted(strategy, hints.get(operation.label))

            @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case):
                case.call_and_validate(app=app, headers=headers, checks=CHECKS)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


def test_fuzz_as_member(api_schema, app, network):
    token = Token.objects.create(user=network["member"])
    failures = fuzz(api_schema, app, {"Authorization": f"Token {token.key}"}, hints_for(network))
    assert not failures, "\n\n".join(failures)


def test_fuzz_as_staff(api_schema, app, network, chain):
    staff = UserFactory(is_staff=True, is_superuser=True, balance="100")  # every staff endpoint is theirs
    token = Token.objects.create(user=staff)
    failures = fuzz(api_schema, app, {"Authorization": f"Token {token.key}"})
    assert not failures, "\n\n".join(failures)


def test_fuzz_as_service(api_schema, app, network):
    _, key = APIKey.objects.create_key(name="fuzz payment service")
    failures = fuzz(api_schema, app, {"Authorization": f"Api-Key {key}"}, hints_for(network))
    assert not failures, "\n\n".join(failures)


def test_the_fuzzer_reports_what_the_schema_does_not_say(app, network):
    """The checks bite: with 400 left out of the bonuses operation's responses, the fuzzer
    reports the 400s that a bad `month` or `limit` gets."""
    document = openapi_document()
    del document["paths"]["/api/mlm/me/bonuses/"]["get"]["responses"]["400"]
    try:
        schema = load(document).include(path="/api/mlm/me/bonuses/")
        token = Token.objects.create(user=network["member"])
        failures = fuzz(schema, app, {"Authorization": f"Token {token.key}"})
    finally:
        DOCUMENTED.clear()
    assert failures
    for failure in failures:
        assert failure.startswith("GET /api/mlm/me/bonuses/ [")
        assert "Undocumented status code" in failure and "Received: 400" in failure, failure
