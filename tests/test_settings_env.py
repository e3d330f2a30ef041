"""`manage.py` in a clean shell: development defaults (with one warning line) when no secret key
is set, and DJANGO_ENV=production refusing to start on an unsafe configuration. Real processes
with an empty environment, as a newcomer's shell or a deploy would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import DEVELOPMENT_SECRET_KEY, production_problems

ROOT = Path(__file__).resolve().parents[1]
GOOD_KEY = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP"


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=120)


def test_a_clean_shell_gets_development_defaults_and_one_warning_line(tmp_path):
    check = manage(tmp_path, "check")
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
    warnings = [line for line in check.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: development settings"), check.stderr

    help_ = manage(tmp_path, "import_legacy", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "usage: manage.py import_legacy" in help_.stdout and "Traceback" not in help_.stderr


def test_the_warning_goes_with_a_key_or_when_allowed(tmp_path):
    assert manage(tmp_path, "check", DJANGO_SECRET_KEY=GOOD_KEY).stderr == ""
    assert manage(tmp_path, "check", DJANGO_ALLOW_INSECURE_KEY="1").stderr == ""


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "DJANGO_SECRET_KEY is not set"),
        ({"DJANGO_SECRET_KEY": "short", "DJANGO_ALLOWED_HOSTS": "azr.example"}, "shorter than 50"),
        ({"DJANGO_SECRET_KEY": GOOD_KEY, "DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS contains '*'"),
        ({"DJANGO_SECRET_KEY": GOOD_KEY, "DJANGO_ALLOWED_HOSTS": "azr.example", "DJANGO_DEBUG": "1"},
         "DJANGO_DEBUG is on"),
        ({"DJANGO_SECRET_KEY": GOOD_KEY, "DJANGO_ALLOW_INSECURE_KEY": "1"}, "DJANGO_ALLOWED_HOSTS is not set"),
    ],
)
def test_production_refuses_an_unsafe_configuration(tmp_path, env, problem):
    result = manage(tmp_path, "check", DJANGO_ENV="production", **env)
    assert result.returncode != 0
    assert "DJANGO_ENV=production refuses to start" in result.stderr and problem in result.stderr
    assert "no issues" not in result.stdout


def test_production_starts_with_a_key_and_hosts(tmp_path):
    result = manage(tmp_path, "check", DJANGO_ENV="production", DJANGO_SECRET_KEY=GOOD_KEY,
                    DJANGO_ALLOWED_HOSTS="azr.example")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_unknown_environment_is_refused(tmp_path):
    result = manage(tmp_path, "check", DJANGO_ENV="prod")
    assert result.returncode != 0 and "DJANGO_ENV must be 'development' or 'production'" in result.stderr


def test_the_production_rule():
    assert production_problems(GOOD_KEY, False, ["azr.example"]) == []
    assert production_problems(DEVELOPMENT_SECRET_KEY, False, ["azr.example"]) == [
        "DJANGO_SECRET_KEY is a development key"]
    assert production_problems("a" * 60, False, ["x"]) == [
        "DJANGO_SECRET_KEY is shorter than 50 characters or too repetitive"]
    assert production_problems("", True, ["*"]) == [
        "DJANGO_SECRET_KEY is not set", "DJANGO_DEBUG is on", "DJANGO_ALLOWED_HOSTS contains '*'"]
