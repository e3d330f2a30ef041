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
    # Nothing the page links or loads is outside the project: no fonts, no logo, no CDN.
    outside = re.findall(r'(?:src|href)\s*=\s*"((?:https?:)?//[^"]*)"|url\(\s*[\'"]?((?:https?:)?//[^)]*)\)', html)
    assert not outside, outside
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html
    scripts = re.findall(r'src="([^"]+\.js)"', html)
    assert scripts, html[:500]
    for src in scripts:
        assert src.startswith("/static/drf_spectacular_sidecar/"), src
        assert finders.find(src.removeprefix("/static/")), f"{src} is not a file the project serves"


def test_redoc_lets_images_fonts_and_requests_come_from_the_project_only(client):
    """Redoc's sidebar asks cdn.redoc.ly for a logo (in its script, not the page): the page's policy
    refuses it before any request leaves, and Redoc's fonts are the system's."""
    html = client.get("/api/redoc/").content.decode()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives == {"img-src": "'self' data:", "font-src": "'self' data:", "connect-src": "'self'"}
    assert "system-ui" in html and "Montserrat" not in html


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
