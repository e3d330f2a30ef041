#!/usr/bin/env bash
# Runs the test suite. Uses PostgreSQL and Redis when they answer (DATABASE_URL /
# CELERY_BROKER_URL, or their default local ports), else SQLite and no Redis,
# and says which. With REQUIRE_SERVICES=1 (CI) a missing service is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

detect_pg() {
  # The server must answer; the database itself need not exist (pytest-django creates
  # test_<name> through the maintenance database), so probe that one.
  $PY - <<'PY'
import os, sys
import psycopg
from urllib.parse import urlsplit, urlunsplit
url = os.environ.get("DATABASE_URL")
candidates = [url] if url else [f"postgresql://{u}@127.0.0.1:5432/test" for u in ("postgres", "root")]
for c in candidates:
    probe = urlunsplit(urlsplit(c)._replace(path="/postgres"))
    try:
        psycopg.connect(probe, connect_timeout=3).close()
    except Exception:
        continue
    print(c)
    sys.exit(0)
sys.exit(1)
PY
}

detect_redis() {
  $PY - <<'PY'
import os, sys
import redis
url = os.environ.get("TEST_REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
if not url.startswith("redis"):
    sys.exit(1)
try:
    redis.Redis.from_url(url, socket_connect_timeout=3).ping()
except Exception:
    sys.exit(1)
print(url)
PY
}

if pg_url=$(detect_pg); then
  export DATABASE_URL="$pg_url"
  echo "tests: database PostgreSQL (${DATABASE_URL%%@*}@…)"
else
  if [ "${REQUIRE_SERVICES:-0}" = "1" ]; then echo "tests: PostgreSQL is required but does not answer" >&2; exit 1; fi
  unset DATABASE_URL
  echo "tests: database SQLite (PostgreSQL did not answer; concurrency tests are skipped)"
fi
if redis_url=$(detect_redis); then
  export TEST_REDIS_URL="$redis_url"
  echo "tests: Redis at $redis_url (real-worker integration tests run)"
else
  if [ "${REQUIRE_SERVICES:-0}" = "1" ]; then echo "tests: Redis is required but does not answer" >&2; exit 1; fi
  unset TEST_REDIS_URL
  echo "tests: no Redis (real-worker integration tests are skipped)"
fi
# Tests run eagerly on an in-memory broker; the worker tests switch to Redis themselves.
export CELERY_BROKER_URL="memory://"
export DJANGO_ALLOW_INSECURE_KEY=1
export VAR_DIR="${VAR_DIR:-$(mktemp -d)}"
exec $PY -m pytest "$@"
