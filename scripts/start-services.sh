#!/usr/bin/env bash
# Starts the servers Herald's tests need, on loopback only (DESIGN.md "Real components"):
# PostgreSQL (role and database `herald`, password `herald`) and Redis (127.0.0.1:6379). Idempotent: a server already up is
# left alone. Prints the environment the tests read.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# PostgreSQL: Debian's cluster, started without systemd.
PG_VERSION="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if [ -z "$PG_VERSION" ]; then
  echo "start-services: postgresql is not installed" >&2
  exit 1
fi
if [ ! -d "/etc/postgresql/$PG_VERSION/main" ]; then
  $SUDO pg_createcluster "$PG_VERSION" main >/dev/null
fi
# Loopback only: tests never need more.
$SUDO sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "/etc/postgresql/$PG_VERSION/main/postgresql.conf"
if ! $SUDO pg_ctlcluster "$PG_VERSION" main status >/dev/null 2>&1; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start
fi
for _ in $(seq 1 50); do
  if $SUDO su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
$SUDO su postgres -c "psql -qAtc \"select 1 from pg_roles where rolname='herald'\"" | grep -q 1 ||
  $SUDO su postgres -c "psql -qc \"CREATE ROLE herald LOGIN PASSWORD 'herald' CREATEDB\""
$SUDO su postgres -c "psql -qAtc \"select 1 from pg_database where datname='herald'\"" | grep -q 1 ||
  $SUDO su postgres -c "psql -qc \"CREATE DATABASE herald OWNER herald\""
echo "start-services: PostgreSQL $PG_VERSION on 127.0.0.1:5432"

# Redis (the shared swarm store's tests): Debian's redis-server 7, loopback only, no persistence.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --logfile /tmp/herald-test-redis.log
fi
for _ in $(seq 1 50); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then break; fi
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
echo "start-services: Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:6379"
