#!/usr/bin/env bash
# Capacity of the reference platform on loopback: how many requests per second one platform
# process serves, so a load test can tell whether the platform or the load generator limits it.
#
# Starts `python -m loadkit.platform` on 127.0.0.1 (random port), runs wrk against it (each run
# bounded: one thread, 32 connections, DURATION_S seconds), stops the platform. Three runs:
#   GET  /health                    (the server's floor: routing, counting, JSON)
#   POST /api/calls                 (validation, store, queue; calls due within 30 s)
#   GET  /api/analytics/dashboard   (after the POST run filled the store)
# Needs wrk (Debian: apt-get install -y wrk). The API key is random and travels only in the
# environment (the Lua scripts read it with os.getenv), never on a command line.
#
# Usage: bench/platform_capacity.sh [DURATION_S]   (env: PYTHON, CONNECTIONS, WRK_THREADS)
set -euo pipefail

DURATION_S="${1:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
WRK_THREADS="${WRK_THREADS:-1}"
# The interpreter with loadkit installed: $PYTHON, else the active virtualenv, else python3.
PYTHON="${PYTHON:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c "import loadkit.platform" || { echo "set PYTHON to a python with loadkit" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install -y wrk" >&2; exit 2; }

WORK="$(mktemp -d)"
PLATFORM_PID=""
cleanup() {
    if [[ -n "$PLATFORM_PID" ]] && kill -0 "$PLATFORM_PID" 2>/dev/null; then
        kill -TERM "$PLATFORM_PID"
        wait "$PLATFORM_PID" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

API_KEY="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')"
export API_KEY

# The platform prints one line once it listens; read the URL from it.
"$PYTHON" -m loadkit.platform --port 0 >"$WORK/stdout" 2>"$WORK/stderr" &
PLATFORM_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/stdout" 2>/dev/null && break
    kill -0 "$PLATFORM_PID" 2>/dev/null || { cat "$WORK/stderr" >&2; exit 1; }
    sleep 0.1
done
URL="$(sed -n 's/^loadkit platform listening on //p' "$WORK/stdout")"
[[ "$URL" == http://127.0.0.1:* ]] || { echo "platform did not announce a loopback URL" >&2; exit 1; }
echo "platform at $URL (pid $PLATFORM_PID); wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION_S}s"

cat >"$WORK/post_call.lua" <<'LUA'
-- POST /api/calls with a valid body, due 30 s from the start of the run.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("API_KEY")
wrk.body = string.format(
  '{"phone_number":"+14155550123","scheduled_at":"%s","campaign_id":"bench",' ..
  '"metadata":{"source":"wrk"}}', os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 30))
function response(status, headers, body)
  if status ~= 201 then error("unexpected status " .. status .. ": " .. body) end
end
LUA
cat >"$WORK/with_key.lua" <<'LUA'
wrk.headers["X-API-Key"] = os.getenv("API_KEY")
function response(status, headers, body)
  if status ~= 200 then error("unexpected status " .. status .. ": " .. body) end
end
LUA

run() {
    local label="$1"; shift
    echo
    echo "== $label"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" --latency "$@"
}
run "GET /health" "$URL/health"
run "POST /api/calls" -s "$WORK/post_call.lua" "$URL/api/calls"
run "GET /api/analytics/dashboard?campaign_id=bench" -s "$WORK/with_key.lua" \
    "$URL/api/analytics/dashboard?campaign_id=bench"
echo
echo "== platform's own count"
"$PYTHON" - "$URL" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_loadkit/counters", timeout=5) as response:
    print(json.dumps(json.load(response)["responses"], indent=1))
PY
