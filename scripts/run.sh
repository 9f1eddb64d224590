#!/usr/bin/env bash
# Starts finops on its embedded default: SQLite and a file-system Celery broker under
# var/, a Celery worker with beat, and gunicorn serving the API and the admin.
# Environment: PORT (8000), HOST (127.0.0.1), SEED_DEMO (1 = load demo data on first start,
# 0 = never; asked when run in a terminal), FINOPS_VAR_DIR (var), FINOPS_HTTPS (0: served
# over plain HTTP on this machine, so no redirect to HTTPS and no Secure-only cookies),
# PROMETHEUS_MULTIPROC_DIR (var/prometheus, emptied at each start: the workers' counters).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PORT:-8000}
HOST=${HOST:-127.0.0.1}
export FINOPS_VAR_DIR=${FINOPS_VAR_DIR:-$PWD/var}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-localhost,127.0.0.1,[::1],$HOST}
export FINOPS_HTTPS=${FINOPS_HTTPS:-0}
mkdir -p "$FINOPS_VAR_DIR"

$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py collectstatic --noinput -v0
creds=$($BIN/python manage.py setup_local)
field() { $BIN/python -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$creds" "$1"; }

if [ ! -f "$FINOPS_VAR_DIR/.demo-offered" ]; then
  seed=${SEED_DEMO:-}
  if [ -z "$seed" ] && [ -t 0 ]; then
    read -r -p "Load demo data (3 tenants, 30 days of traffic)? [Y/n] " answer
    case "$answer" in [nN]*) seed=0 ;; *) seed=1 ;; esac
  fi
  if [ "${seed:-1}" = "1" ]; then
    echo "Loading demo data (a few seconds)..."
    $BIN/python manage.py seed_demo
  fi
  touch "$FINOPS_VAR_DIR/.demo-offered"
fi
# The demo's portal logins, if any, were added to the credentials file.
portal_logins=$($BIN/python - "$FINOPS_VAR_DIR/local-credentials.json" <<'PY'
import json, sys
users = json.load(open(sys.argv[1])).get("portal_users", {})
print("  ".join(f"{u['username']} / {u['password']}" for u in users.values()))
PY
)

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

$BIN/celery -A config worker --beat --concurrency 1 --loglevel INFO \
  --schedule "$FINOPS_VAR_DIR/celerybeat-schedule" \
  --logfile "$FINOPS_VAR_DIR/celery.log" &
pids+=($!)

cat <<BANNER

  finops is starting on http://$HOST:$PORT/
  Admin console:  http://$HOST:$PORT/admin/   user: $(field admin_username)   password: $(field admin_password)
  API docs:       http://$HOST:$PORT/api/docs/
  Metrics:        http://$HOST:$PORT/metrics   (Prometheus; from this machine)
  Operator key:   $(field operator_key)
  Tenant portal:  http://$HOST:$PORT/portal/   ${portal_logins:-no tenant users yet (create them in the admin)}
  (kept in $FINOPS_VAR_DIR/local-credentials.json; Celery log in $FINOPS_VAR_DIR/celery.log)

BANNER

# The gunicorn workers add up their /metrics counters in files here; a previous run's
# would be counted too, and its dead workers' files never go away.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$FINOPS_VAR_DIR/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
$BIN/gunicorn config.wsgi:application --bind "$HOST:$PORT" --workers 2 \
  --access-logfile - --error-logfile - &
pids+=($!)
wait -n "${pids[@]}"
