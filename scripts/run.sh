#!/usr/bin/env bash
# Runs the web app, a Celery worker and celery-beat together; Ctrl-C stops all three.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
KEY=$("$BIN/python" manage.py apikey create --name "make run $(date -u +%FT%TZ)")

pids=()
cleanup() { trap - HUP INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup HUP INT TERM EXIT

"$BIN/celery" -A config worker --loglevel=INFO --concurrency=2 >var/worker.log 2>&1 &
pids+=($!)
"$BIN/celery" -A config beat --loglevel=INFO >var/beat.log 2>&1 &
pids+=($!)

cat <<MSG

  Kota is starting on http://127.0.0.1:$PORT/
    Console (staff):   http://127.0.0.1:$PORT/admin/     login: admin / admin
    Customer pages:    http://127.0.0.1:$PORT/my/        login: owner@acme.test / demo
    API docs:          http://127.0.0.1:$PORT/api/docs/
    API key (new):     $KEY
    Try:  curl -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/api/v1/offers
  Worker log: var/worker.log   Scheduler log: var/beat.log   Emails: var/mail/
  Ctrl-C stops everything.

MSG
"$BIN/python" manage.py runserver "0.0.0.0:$PORT" &
pids+=($!)
wait -n "${pids[@]}"
