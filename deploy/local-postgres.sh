#!/usr/bin/env bash
# Start this machine's PostgreSQL (Debian's package, installed if absent) and make sure a login
# role that may create databases exists; print its SQLAlchemy URI for the tracking server and the
# tests (XRAYTRACK_POSTGRES_URI). For a workstation or CI, not for a lab's production database.
#
#   XRAYTRACK_PG_PASSWORD  the role's password (required; set again on every call)
#   XRAYTRACK_PG_USER      the role (default xraytrack)
set -euo pipefail

: "${XRAYTRACK_PG_PASSWORD:?set XRAYTRACK_PG_PASSWORD (e.g. openssl rand -hex 16)}"
user="${XRAYTRACK_PG_USER:-xraytrack}"
# Stdout carries only the URI (callers capture it); everything else, e.g. pg_ctlcluster's
# "Removed stale pid file.", goes to stderr. The server daemon must not inherit fd 3, or a
# caller's $(...) would wait for it to exit.
exec 3>&1 1>&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
if [ "$status" != "online" ]; then
  $sudo pg_ctlcluster "$version" "$cluster" start 3>&-
fi

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
# psql's variables quote the name and password, so neither can break the statement.
as_postgres psql -q -v ON_ERROR_STOP=1 -p "$port" -d postgres \
  -v user="$user" -v password="$XRAYTRACK_PG_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'user')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'user', :'password') \gexec
SQL
echo "postgresql+psycopg://${user}:${XRAYTRACK_PG_PASSWORD}@127.0.0.1:${port}/postgres" >&3
