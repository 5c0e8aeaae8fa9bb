#!/bin/sh
# preStop hook: keep serving while the pod leaves the Service's endpoints, then wait for the running
# and queued requests to finish before the kubelet sends SIGTERM.
#
# Environment (set by the chart): DRAIN_DELAY (seconds), REQUEST_TIMEOUT (seconds), PORT,
# BUSY_METRICS (an awk regex of the /metrics gauges that count running and waiting requests),
# API_KEY_FILE (may be empty).
set -u
sleep "${DRAIN_DELAY:-10}"
auth=""
if [ -n "${API_KEY_FILE:-}" ] && [ -r "$API_KEY_FILE" ]; then auth="Authorization: Bearer $(head -n 1 "$API_KEY_FILE")"; fi
end=$(( $(date +%s) + ${REQUEST_TIMEOUT:-300} ))
while [ "$(date +%s)" -lt "$end" ]; do
  metrics=$(curl -fsS --max-time 5 ${auth:+-H "$auth"} "http://127.0.0.1:${PORT}/metrics") || exit 0
  busy=$(printf '%s\n' "$metrics" | awk -v re="^(${BUSY_METRICS})[ {]" '$0 ~ re { s += $NF } END { print s + 0 }')
  [ "$busy" = 0 ] && exit 0
  echo "drain: $busy requests still running or waiting"
  sleep 2
done
echo "drain: requests still running after ${REQUEST_TIMEOUT:-300} s; stopping anyway"
