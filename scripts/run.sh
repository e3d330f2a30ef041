#!/usr/bin/env bash
# Starts the platform on embedded defaults: migrate, seed the demo, collect the static files,
# then the local chain node (unless WEB3_PROVIDER_URI is set; its chain is kept in
# VAR_DIR/chain-journal.jsonl across restarts), a Celery worker, Celery beat (database
# scheduler) and gunicorn. Ctrl-C or SIGTERM stops them all and exits 0; a child that dies
# on its own stops the rest and exits non-zero.
# Settings: .env when present (see .env.example); PORT (8000), HOST (127.0.0.1), CHAIN_PORT
# (8545), VAR_DIR (./var).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
if [ -f "${ENV_FILE:-.env}" ]; then set -a; . "${ENV_FILE:-.env}"; set +a; fi
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
export DJANGO_ALLOW_INSECURE_KEY="${DJANGO_ALLOW_INSECURE_KEY:-1}"  # the one warning line is said below
export VAR_DIR="${VAR_DIR:-$ROOT/var}"
export PORT="${PORT:-8000}" HOST="${HOST:-127.0.0.1}"
CHAIN_PORT="${CHAIN_PORT:-8545}"
LOG="$VAR_DIR/log"
mkdir -p "$LOG"

say() { echo "$*"; echo "$(date -u +%FT%TZ) $*" >>"$LOG/run.log"; }

pids=()
names=()
stopping=0
# Every process this run starts, grandchildren included (gunicorn's and Celery's pool workers),
# inherits RUN_MARK in its environment, so the stop can wait for all of them, not only for the
# children it started. run.sh itself does not carry it.
RUN_MARK="AZR_RUN=$$-$RANDOM-$(date +%s%N)"
start() {  # start NAME LOGFILE COMMAND…: a child in the background, remembered for stop
  local name=$1 logfile=$2; shift 2
  env "$RUN_MARK" "$@" >>"$logfile" 2>&1 &
  pids+=($!); names+=("$name")
}
run_processes() {  # the live processes carrying RUN_MARK (a zombie's environment reads empty)
  grep -lzxF -- "$RUN_MARK" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
}
stop_all() {
  local i pid left deadline
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 25))
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "  ${names[$i]} ($pid) did not stop in time: killed"; kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  # A pool worker may outlive its parent for a moment (Celery's ignores SIGINT and leaves when
  # it sees its master gone): "Stopped." means every process of the run has gone.
  deadline=$((SECONDS + 10))
  while left=$(run_processes) && [ -n "$left" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if [ -n "$left" ]; then
    say "  left over after the stop, killed: $(echo $left)"; kill -KILL $left 2>/dev/null || true
  fi
}
on_signal() {
  trap '' INT TERM
  stopping=1
  echo; say "Stopping (signal): ${names[*]:-nothing started yet}…"
  stop_all
  say "Stopped."
  exit 0
}
on_exit() {
  local status=$?
  trap - EXIT
  if [ $stopping = 0 ] && [ ${#pids[@]} -gt 0 ]; then stop_all; fi
  exit $status
}
trap on_signal INT TERM
trap on_exit EXIT

if [ -z "${DJANGO_SECRET_KEY:-}" ]; then
  echo "Development settings: no DJANGO_SECRET_KEY (fine here; DJANGO_ENV=production refuses it)."
fi
$BIN/python manage.py migrate --noinput
$BIN/python manage.py seed_demo
$BIN/python manage.py collectstatic --noinput -v 0  # served by whitenoise from $VAR_DIR/static

if [ -z "${WEB3_PROVIDER_URI:-}" ]; then
  export CHAIN_INFO_FILE="${CHAIN_INFO_FILE:-$VAR_DIR/chain.json}"
  JOURNAL="$VAR_DIR/chain-journal.jsonl"
  NOTICE="$VAR_DIR/chain-reset.json"
  rm -f "$CHAIN_INFO_FILE"  # a stopped node's: the node writes it again once it serves
  STARTED="$VAR_DIR/.run-started"; touch "$STARTED"
  start chain "$LOG/chain.log" $BIN/python -m tokens.chain.node --host 127.0.0.1 --port "$CHAIN_PORT" \
    --info-file "$CHAIN_INFO_FILE" --journal "$JOURNAL"
  for _ in $(seq 1 240); do
    [ -s "$CHAIN_INFO_FILE" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.25
  done
  [ -s "$CHAIN_INFO_FILE" ] || { say "The local chain node did not start: see $LOG/chain.log" >&2; exit 1; }
  export WEB3_PROVIDER_URI="http://127.0.0.1:$CHAIN_PORT"
  echo "Chain: local node at $WEB3_PROVIDER_URI (kept in $JOURNAL)"
  if [ -f "$NOTICE" ] && [ "$NOTICE" -nt "$STARTED" ]; then
    # The node could not reopen its recorded chain and started a fresh one: say so loudly, and
    # name what the database claims that this chain does not have.
    say "$($BIN/python -c 'import json,sys; from tokens.chain.journal import banner; \
print(banner(json.load(open(sys.argv[1]))))' "$NOTICE")"
    $BIN/python manage.py chain_reconcile --notice "$NOTICE" 2>&1 | tee -a "$LOG/run.log" || true
  fi
fi

start worker "$LOG/worker.log" $BIN/celery -A config worker --loglevel INFO --concurrency "${CELERY_CONCURRENCY:-2}"
start beat "$LOG/beat.log" $BIN/celery -A config beat --loglevel INFO \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile=
start web "$LOG/web.log" $BIN/gunicorn -c config/gunicorn.conf.py

cat <<MSG

  AZR back-office is starting on http://$HOST:$PORT/   (gunicorn; Ctrl-C stops everything)
    Admin:    http://$HOST:$PORT/admin/   login admin@example.com / admin12345
    API docs: http://$HOST:$PORT/api/docs/      Health: http://$HOST:$PORT/health/
    Logs:     $LOG/ (web.log, access.log, worker.log, beat.log, chain.log, run.log)
    Broker:   ${CELERY_BROKER_URL:-filesystem ($VAR_DIR/celery)}   Database: ${DATABASE_URL:-SQLite ($VAR_DIR/db.sqlite3)}

MSG
set +e
wait -n "${pids[@]}"
status=$?
set -e
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then say "${names[$i]} stopped on its own (status $status): stopping the rest; see $LOG/${names[$i]}.log"; fi
done
exit $(( status == 0 ? 1 : status ))
