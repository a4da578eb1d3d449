#!/usr/bin/env bash
# A tracking server a team shares: MLflow's own server with a PostgreSQL backend store, artifacts
# proxied by the server (clients need no storage credentials) and MLflow's basic-auth app.
#
#   XRAYTRACK_BACKEND_STORE_URI    postgresql+psycopg://USER:PASSWORD@HOST:5432/DB   (required)
#   XRAYTRACK_ARTIFACTS_DESTINATION  a folder or s3://bucket/prefix                  (required)
#   MLFLOW_AUTH_ADMIN_PASSWORD     the admin's password, used the first time only    (required)
#   MLFLOW_FLASK_SERVER_SECRET_KEY a secret for CSRF tokens, the same on every replica (required)
#   XRAYTRACK_AUTH_DATABASE_URI    users and permissions (default: the backend store's database)
#   XRAYTRACK_HOST (127.0.0.1), XRAYTRACK_PORT (5000), XRAYTRACK_WORKERS (2),
#   XRAYTRACK_WORKER_HEALTHCHECK_SECONDS (60)
#
# Any argument is passed on to `mlflow server` after these, so it wins: `--port 5001`.
# docs/scale.md shows the whole set-up; nothing here has a default password.
set -euo pipefail

: "${XRAYTRACK_BACKEND_STORE_URI:?set XRAYTRACK_BACKEND_STORE_URI (postgresql+psycopg://...)}"
: "${XRAYTRACK_ARTIFACTS_DESTINATION:?set XRAYTRACK_ARTIFACTS_DESTINATION (a folder or s3://...)}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD (the admin user is created with it)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (e.g. openssl rand -hex 32)}"
export MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY

# MLflow's basic-auth app reads its settings from an ini file: a private one that holds no admin
# password (the database URI in it may hold the database's: readable by this user only).
config_dir="$(mktemp -d)"
trap 'rm -rf "$config_dir"' EXIT
cat > "$config_dir/basic_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = ${XRAYTRACK_AUTH_DATABASE_URI:-$XRAYTRACK_BACKEND_STORE_URI}
admin_username = ${XRAYTRACK_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Checking a password is a deliberately slow hash; a client logs in on every request (a model's
# logging alone makes hundreds), so keep a good check for a minute in each worker.
auth_cache_ttl_seconds = ${XRAYTRACK_AUTH_CACHE_SECONDS:-60}
INI
chmod 600 "$config_dir/basic_auth.ini"  # the database URI may hold a password
export MLFLOW_AUTH_CONFIG_PATH="$config_dir/basic_auth.ini"

# uvicorn kills a worker that misses a 5-second health check, and with it the requests it is
# serving: on a machine that also trains, a busy worker is not a hung one. Hence 60 seconds.
# Not exec: the trap removes the ini (and its database password) when the server stops.
mlflow server \
  --backend-store-uri "$XRAYTRACK_BACKEND_STORE_URI" \
  --serve-artifacts --artifacts-destination "$XRAYTRACK_ARTIFACTS_DESTINATION" \
  --app-name basic-auth \
  --host "${XRAYTRACK_HOST:-127.0.0.1}" --port "${XRAYTRACK_PORT:-5000}" \
  --workers "${XRAYTRACK_WORKERS:-2}" \
  --uvicorn-opts "--timeout-worker-healthcheck ${XRAYTRACK_WORKER_HEALTHCHECK_SECONDS:-60}" \
  "$@" &
server=$!
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; rm -rf "$config_dir"' EXIT
wait "$server"
