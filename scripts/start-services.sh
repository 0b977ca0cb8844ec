#!/usr/bin/env bash
# Starts the servers Herald's tests need, on loopback only (DESIGN.md "Real components"):
# PostgreSQL (role and database `herald`, password `herald`), Redis (127.0.0.1:6379) and a Redis Cluster
# (127.0.0.1:7001-7006). Idempotent: a server already up is
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
# The tests drop their databases WITH (FORCE): ending a leftover connection of the test's own
# needs no grant, but PostgreSQL checks every process on the database against the caller's roles.
$SUDO su postgres -c "psql -qc \"GRANT pg_signal_backend TO herald\"" >/dev/null
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

# Redis Cluster (the shared swarm store on Cluster, and its failover test): three masters with a
# replica each on 127.0.0.1:7001-7006, under a directory of its own, no persistence. A short
# cluster-node-timeout so that a failover takes seconds. Idempotent: a cluster already in state
# ok is left alone.
CLUSTER_DIR="${HERALD_REDIS_CLUSTER_DIR:-/tmp/herald-redis-cluster}"
if ! redis-cli -h 127.0.0.1 -p 7001 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
  for port in 7001 7002 7003 7004 7005 7006; do
    if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
      mkdir -p "$CLUSTER_DIR/$port"
      rm -f "$CLUSTER_DIR/$port/nodes.conf"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
        --cluster-config-file "$CLUSTER_DIR/$port/nodes.conf" --cluster-node-timeout 2000 \
        --dir "$CLUSTER_DIR/$port" --save '' --appendonly no --logfile "$CLUSTER_DIR/$port/redis.log"
    fi
  done
  for port in 7001 7002 7003 7004 7005 7006; do
    for _ in $(seq 1 50); do
      if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
  done
  # Nodes that already know each other (a partial earlier run) are reset first.
  for port in 7001 7002 7003 7004 7005 7006; do
    redis-cli -h 127.0.0.1 -p "$port" flushall >/dev/null
    redis-cli -h 127.0.0.1 -p "$port" cluster reset hard >/dev/null
  done
  redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 127.0.0.1:7004 127.0.0.1:7005 \
    127.0.0.1:7006 --cluster-replicas 1 --cluster-yes >/dev/null
fi
for _ in $(seq 1 100); do
  if redis-cli -h 127.0.0.1 -p 7001 cluster info | grep -q 'cluster_state:ok'; then break; fi
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p 7001 cluster info | grep -q 'cluster_state:ok'
# The failover test needs every master's replica attached.
for _ in $(seq 1 100); do
  if [ "$(redis-cli -h 127.0.0.1 -p 7001 cluster nodes | grep -c slave)" -ge 3 ]; then break; fi
  sleep 0.1
done
echo "start-services: Redis Cluster (3 masters, 3 replicas) on 127.0.0.1:7001-7006"
