"""`make run` for real: scripts/run.sh on free ports with a temporary VAR_DIR (SQLite, the
filesystem broker, the local chain node, a Celery worker, beat and gunicorn), stopped by Ctrl-C
(SIGINT to the whole process group, as a terminal sends it) and then, started again, by SIGTERM
to the script alone (as a process manager sends it). Each time: exit status 0, every process
the run started gone when run.sh exits (pool workers included), no traceback in any log; the
second start reopens the chain the first one left; whitenoise serves the static files from
gunicorn; kombu's "No hostname was supplied" warning never shows.

Slow (two starts, ~40 s on two cores) but not skipped: CI runs it like any other test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# What the test process has that a developer's shell would not: the test settings, the
# in-memory broker, the test database. The run must use its own embedded defaults.
_NOT_PASSED = ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "DATABASE_URL", "CACHE_URL", "REDIS_URL",
               "WEB3_PROVIDER_URI", "CHAIN_INFO_FILE", "TEST_REDIS_URL", "PORT", "CHAIN_PORT", "DJANGO_DEBUG")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local URL
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


class Run:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port, self.chain_port = _free_port(), _free_port()
        env = {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}
        env.update(VAR_DIR=str(var_dir), PORT=str(self.port), CHAIN_PORT=str(self.chain_port),
                   ENV_FILE=str(var_dir / "no.env"), WEB_CONCURRENCY="1", CELERY_CONCURRENCY="1")
        self.out = open(var_dir / "run.out", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, stdout=self.out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_for_health(self, timeout: float = 90) -> dict:
        """The web server answers /health/ with the database, broker and chain up (beat's first
        heartbeat may take a minute)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                status, body, _ = _get(self.url + "/health/", timeout=3)
            except OSError:
                time.sleep(0.5)
                continue
            checks = json.loads(body)["checks"]
            if all(checks[name]["ok"] for name in ("database", "broker", "chain")):
                return checks
            time.sleep(0.5)
        raise AssertionError(f"/health/ never answered:\n{self.output()}")

    def wait_for_log(self, name: str, text: str, timeout: float = 90) -> None:
        """Until ``var/log/<name>`` says ``text`` (the worker is ready only after Django loads)."""
        path, deadline = self.var_dir / "log" / name, time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            if path.exists() and text in path.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} never said {text!r}:\n{self.output()}")

    def children(self) -> list[str]:
        """What the run started that is still alive, grandchildren included (``pid command``):
        every process whose environment carries this run's VAR_DIR. A zombie has exited and
        only waits to be reaped; its environment reads empty, so it is not counted."""
        mark, alive = f"VAR_DIR={self.var_dir}".encode(), []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if mark not in environ.read_bytes().split(b"\0"):
                    continue
                command = (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone while we looked
            alive.append(f"{environ.parent.name} {command}")
        return alive

    def stop(self, how: str) -> int:
        if how == "ctrl-c":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=40)
        finally:
            self.left = self.children()  # looked at the moment run.sh has gone, before any clean-up
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of a failed stop
            self.out.close()
        return status

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return (self.var_dir / "run.out").read_text(errors="replace")

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in (self.var_dir / "log").glob("*.log")}


def test_make_run_serves_and_stops_cleanly_on_ctrl_c_and_sigterm_keeping_its_chain(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()

    first = Run(var_dir)
    try:
        first.wait_for_health()
        # whitenoise serves the admin's and the API docs' static files from gunicorn.
        status, body, headers = _get(first.url + "/static/admin/css/base.css")
        assert status == 200 and headers["Server"].startswith("gunicorn") and b"body" in body
        status, body, _ = _get(first.url + "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
        assert status == 200 and len(body) > 100_000
        assert _get(first.url + "/static/admin/css/no-such-file.css")[0] == 404
        treasury = json.loads((var_dir / "chain.json").read_text())["treasury_address"]
    finally:
        status = first.stop("ctrl-c")
    assert status == 0, first.output()
    assert not first.left, f"a process of the run outlived run.sh: {first.left}"
    assert "Stopped." in first.output()

    second = Run(var_dir)
    try:
        second.wait_for_health()
        second.wait_for_log("worker.log", "ready.")  # its warm shutdown is checked below
        assert json.loads((var_dir / "chain.json").read_text())["treasury_address"] == treasury
    finally:
        status = second.stop("sigterm")
    assert status == 0, second.output()
    assert not second.left, f"a process of the run outlived run.sh: {second.left}"

    logs = second.logs()
    assert "chain reopened from" in logs["chain.log"]
    assert not (var_dir / "chain-reset.json").exists()
    assert "Warm shutdown" in logs["worker.log"] and "Shutting down: Master" in logs["web.log"]
    everything = second.output() + "".join(logs.values())
    assert "Traceback" not in everything
    assert "No hostname was supplied" not in everything
    assert "GET /static/admin/css/base.css" in logs["access.log"]
