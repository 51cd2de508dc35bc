#!/usr/bin/env bash
# Lone requests on an idle, freshly started server: where the first requests' time goes (docs/serving.md, "Measured",
# "The first requests on an idle server"). Starts `trident serve` on its own port and storage directory, waits until
# /ready answers 200 and PAUSE seconds more, then sends COUNT requests one at a time (each after the previous one
# finished, PAUSE seconds apart) and prints, per request, the dispatch round, whether it met its deadline, its total
# and the queue / encode / diffuse / decode milliseconds from its status (`timings`); then the recent rounds' planning
# times (GET /v1/plan) and the server's warm-up line. Stops the server (SIGTERM to its PID) and removes its storage.
#
#   scripts/first-requests.sh                          # 3 requests of 64×64, 2 steps, port 19280
#   SIZE=128 STEPS=8 COUNT=5 PORT=8095 scripts/first-requests.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT=${PORT:-19280}
SIZE=${SIZE:-64}
STEPS=${STEPS:-2}
COUNT=${COUNT:-3}
PAUSE=${PAUSE:-2}
store="$(mktemp -d "${TMPDIR:-/tmp}/trident-first-requests-XXXXXX")"
log="$store.log"
"$here/trident" serve --urls "http://127.0.0.1:$PORT" --Trident:Storage:Directory "$store" --Trident:LogFormat text > "$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$store"; }
trap cleanup EXIT
for _ in $(seq 1 1200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ready" || true)" = 200 ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the server exited; its log: $log" >&2; cat "$log" >&2; exit 1; }
  sleep 0.5
done
sleep "$PAUSE"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$COUNT"); do
  id=$(curl -s "http://127.0.0.1:$PORT/v1/generations" -H 'content-type: application/json' \
    -d "{\"prompt\":\"a red fox\",\"width\":$SIZE,\"height\":$SIZE,\"steps\":$STEPS}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  for _ in $(seq 1 600); do
    body=$(curl -s "http://127.0.0.1:$PORT/v1/generations/$id")
    echo "$body" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["status"] in ("succeeded","failed","cancelled") else 1)' && break
    sleep 0.1
  done
  echo "$body" | python3 -c '
import json, sys
d = json.load(sys.stdin); t = d["timings"]
ms = lambda k: "%s=%s" % (k, (t.get(k) or {}).get("duration_ms"))
print("request %s: %s, round %s, deadline met %s, total_ms=%s %s" % (d["id"], d["status"], (d.get("route") or {}).get("round"),
      d["deadline"]["met"], t.get("total_ms"), " ".join(ms(k) for k in ("queued", "encode", "diffuse", "decode"))))'
  sleep "$PAUSE"
done
curl -s "http://127.0.0.1:$PORT/v1/plan" | python3 -c '
import json, sys
for r in reversed(json.load(sys.stdin)["recent_rounds"]):
    print("round %d: %s, plan_ms=%.1f" % (r["round"], r["source"], r["plan_ms"]))'
grep -h "Warm-up" "$log" | sed 's/^/server: /' || true
