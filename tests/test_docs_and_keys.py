"""The API docs pages work offline (their assets come from the project), and services get an
API key from a command."""

import re
from io import StringIO

import pytest
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from rest_framework_api_key.models import APIKey

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_their_assets_from_the_project_not_a_cdn(client, url):
    r = client.get(url)
    assert r.status_code == 200
    html = r.content.decode()
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
    scripts = re.findall(r'src="([^"]+\.js)"', html)
    assert scripts, html[:500]
    for src in scripts:
        assert src.startswith("/static/drf_spectacular_sidecar/"), src
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a file the project serves"


def test_create_api_key_prints_a_key_that_authenticates(api_client):
    out = StringIO()
    call_command("create_api_key", "payments", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    assert APIKey.objects.get(name="payments").is_valid(key)
    r = api_client.post("/api/service/deposits/", {"member_id": 999999, "amount": "1", "reference": "x"},
                        format="json", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert r.status_code == 400  # past the key check: the member is unknown


@pytest.mark.parametrize("args", [["  "], ["x", "--expires-in-days", "0"]])
def test_create_api_key_refuses_bad_input(args):
    with pytest.raises(CommandError):
        call_command("create_api_key", *args)
    assert not APIKey.objects.exists()
