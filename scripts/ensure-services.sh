#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1: starts them when installed but stopped,
# installs them with apt-get when missing and running as root, otherwise says what to do.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }
fail() { echo "whoop-sync: $*" >&2; exit 1; }

install_pkgs() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    fail "$1 is not installed; install it (Debian: sudo apt-get install $2) and run this again"
  fi
  echo "whoop-sync: installing $2 with apt-get" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null; }
}

if ! pg_up; then
  command -v pg_ctlcluster >/dev/null || install_pkgs PostgreSQL "postgresql postgresql-client"
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    fail "PostgreSQL is installed but has no cluster; create one with pg_createcluster"
  fi
  echo "whoop-sync: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start >/dev/null 2>&1 \
    || [ "$(id -u)" -eq 0 ] || fail "PostgreSQL is stopped and could not be started; start it (sudo pg_ctlcluster ... main start)"
  wait_for pg_up || fail "PostgreSQL did not come up on $PG_HOST:$PG_PORT"
fi

if ! redis_up; then
  command -v redis-server >/dev/null || install_pkgs Redis redis-server
  echo "whoop-sync: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
  wait_for redis_up || fail "Redis did not come up on 127.0.0.1:$REDIS_PORT"
fi

# Tools the tests drive: a real browser for the console, PgBouncer for the transaction pooler,
# promtool for the shipped alert rules. Installed with apt-get when missing (as root), else named.
ensure_tool() {
  command -v "$1" >/dev/null && return 0
  install_pkgs "$1" "$2"
  command -v "$1" >/dev/null || fail "$1 is still missing after installing $2"
}
ensure_tool chromium chromium
ensure_tool chromedriver chromium-driver
ensure_tool pgbouncer pgbouncer
ensure_tool promtool prometheus
