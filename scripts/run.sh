#!/usr/bin/env bash
# Starts the platform on embedded defaults: migrate, seed the demo, then the
# local chain node (unless WEB3_PROVIDER_URI is set), a Celery worker, Celery
# beat (database scheduler) and the web server. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
PORT="${PORT:-8000}"
CHAIN_PORT="${CHAIN_PORT:-8545}"
mkdir -p var/log

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "Stopping…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$BIN/python manage.py migrate --noinput
$BIN/python manage.py createcachetable  # the API throttle counters, when the cache is the database
$BIN/python manage.py seed_demo

if [ -z "${WEB3_PROVIDER_URI:-}" ]; then
  export CHAIN_INFO_FILE="${CHAIN_INFO_FILE:-$PWD/var/chain.json}"
  rm -f "$CHAIN_INFO_FILE"
  $BIN/python -m tokens.chain.node --host 127.0.0.1 --port "$CHAIN_PORT" --info-file "$CHAIN_INFO_FILE" \
    >var/log/chain.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 120); do [ -s "$CHAIN_INFO_FILE" ] && break; sleep 0.5; done
  [ -s "$CHAIN_INFO_FILE" ] || { echo "The local chain node did not start: see var/log/chain.log" >&2; exit 1; }
  export WEB3_PROVIDER_URI="http://127.0.0.1:$CHAIN_PORT"
  echo "Chain: local node at $WEB3_PROVIDER_URI (contracts in $CHAIN_INFO_FILE)"
fi

$BIN/celery -A config worker --loglevel INFO --concurrency 2 >var/log/worker.log 2>&1 &
pids+=($!)
$BIN/celery -A config beat --loglevel INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile= >var/log/beat.log 2>&1 &
pids+=($!)

cat <<MSG

  AZR back-office is starting on http://127.0.0.1:$PORT/
    Admin:    http://127.0.0.1:$PORT/admin/   login admin@example.com / admin12345
    API docs: http://127.0.0.1:$PORT/api/docs/
    Logs:     var/log/ (worker.log, beat.log, chain.log)
    Broker:   ${CELERY_BROKER_URL:-filesystem (var/celery)}   Database: ${DATABASE_URL:-SQLite (var/db.sqlite3)}

MSG
$BIN/python manage.py runserver "0.0.0.0:$PORT" --noreload &
pids+=($!)
wait -n "${pids[@]}"
