#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian/Ubuntu machine, then runs them.
# Idempotent: a second run reuses the virtualenv and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Servers the tests start on loopback ports of their own: Redis (queue depth, the platform's Redis
# mode) and InfluxDB 1.x (--out influxdb). The Debian packages' own services are not used.
# Debian's Chromium for the web UI's browser tests (Playwright drives it; it never downloads a
# browser of its own). Another process may hold the dpkg lock: wait for it rather than fail.
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v influxd >/dev/null || missing+=(influxdb)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# openssl makes the self-signed certificate of the lean client's TLS test.
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    apt=($sudo apt-get -o DPkg::Lock::Timeout=900)
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
fi

# Real BullMQ (v4, v5 and v6 side by side, pinned by the lockfile) for the queue tests: Node 20+.
if ! command -v npm >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    apt=($sudo apt-get -o DPkg::Lock::Timeout=900)
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq nodejs npm >/dev/null
fi
(cd tests/fixtures/bullmq && npm ci --no-audit --no-fund --loglevel=error </dev/null)
# Real prom-client (pinned by the lockfile): a Node service's /metrics for the metrics parser tests.
(cd tests/fixtures/prom_client && npm ci --no-audit --no-fund --loglevel=error </dev/null)

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,otel]'

.venv/bin/ruff format --check .
.venv/bin/ruff check .
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@" # your own selection, as given
fi

# The whole suite, in under 10 minutes on two cores: two shards side by side (whole files,
# balanced by tests/sharding.py), then, alone, the tests whose rates, timings or CPU readings
# need the machine to themselves (marked serial). Each shard's report is printed when both end.
logs=$(mktemp -d)
pids=()
for shard in 1 2; do
    LOADKIT_TEST_SHARD=$shard/2 .venv/bin/python -m pytest -p no:cacheprovider \
        >"$logs/shard-$shard.log" 2>&1 &
    pids+=($!)
done
status=0
for shard in 1 2; do
    wait "${pids[$((shard - 1))]}" || status=1
done
for shard in 1 2; do
    echo "===== shard $shard of 2 (tests that can share the machine)"
    cat "$logs/shard-$shard.log"
done
echo "===== serial (tests that measure rates, timings or CPU)"
.venv/bin/python -m pytest -p no:cacheprovider -m serial || status=1
rm -rf "$logs"
exit $status
