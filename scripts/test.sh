#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian/Ubuntu machine, then runs them.
# Idempotent: a second run reuses the virtualenv and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Servers the tests start on loopback ports of their own: Redis (queue depth, the platform's Redis
# mode) and InfluxDB 1.x (--out influxdb). The Debian packages' own services are not used.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v influxd >/dev/null || missing+=(influxdb)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Real BullMQ (v4, v5 and v6 side by side, pinned by the lockfile) for the queue tests: Node 20+.
if ! command -v npm >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
(cd tests/fixtures/bullmq && npm ci --no-audit --no-fund --loglevel=error </dev/null)
# Real prom-client (pinned by the lockfile): a Node service's /metrics for the metrics parser tests.
(cd tests/fixtures/prom_client && npm ci --no-audit --no-fund --loglevel=error </dev/null)

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,otel]'

.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
