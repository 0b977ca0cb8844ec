#!/usr/bin/env bash
# The one command that sets up everything Herald's tests need on a fresh Debian machine and runs
# the whole suite (README "Quick start"; .ci/run calls exactly this).
#   - Debian packages: the real BitTorrent clients of the end-to-end tests, PostgreSQL, Chromium
#     (portal and WebTorrent browser tests) and iproute2 (the WebRTC test's network namespace).
#     python3-aiosmtpd is the real SMTP server the account-mail tests send to.
#   - PostgreSQL and Redis started on 127.0.0.1 (scripts/start-services.sh); their tests are mandatory here.
#   - npm packages (npm ci), including the npm `node` package that brings Node 24.
#   - lint, type check, then `npm test` (unit, property/fuzz, integration, end-to-end), then the
#     install tests: the single-file build and the packed npm package (`npm run test:install`).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-libtorrent python3-aiosmtpd aria2 transmission-cli openssl postgresql redis-server chromium iproute2)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "test-all: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "test-all: starting servers on loopback"
bash scripts/start-services.sh
export HERALD_TEST_PG_URL="postgres://herald:herald@127.0.0.1:5432/herald"
export HERALD_TEST_REQUIRE_PG=1
export HERALD_TEST_REDIS_URL="redis://127.0.0.1:6379"
export HERALD_TEST_REDIS_CLUSTER="redis-cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
export HERALD_TEST_REQUIRE_REDIS=1

echo "test-all: npm ci"
npm ci --no-audit --no-fund
# The batched UDP addon is part of what CI tests: a failed build fails the run here.
npm run build:native

echo "test-all: lint"
npm run lint
echo "test-all: typecheck"
npm run typecheck
echo "test-all: tests"
npm test
# Installs (issue #17): the one-file build run alone without node on PATH; the packed npm package.
echo "test-all: install (single-file build, npm package)"
npm run test:install
