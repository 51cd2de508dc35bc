#!/usr/bin/env bash
# Live backfilling of held devices, side by side (issue 11; docs/policies.md, "Backfilling"): the flux trace that
# `trident evaluate` simulates at the paper-comparable rate (flux-reference at RATE req/s, 2048² gangs queued behind
# running work hold devices idle) replayed on DEVICES emulated flux devices (no model: each stage task sleeps the
# scaled profile's time), once with Trident:Serving:BackfillHeldDevices true (the default) and once false, each on a
# fresh server; PAIRS such pairs, alternating (then the medians). loadgen scales the trace's arrivals to the server's clock
# (`--time-scale`). Prints per run attainment, mean and P95 latency over every request (unserved ones counted as
# misses; latencies in the trace's seconds, i.e. the server's divided by SCALE), how many requests were routed as
# backfills on held devices (`trident_backfills_total` on /metrics), then the simulator's prediction for the
# same trace (which always backfills).
#
#   scripts/measure-live-backfill.sh                        # 128 devices, time scale 0.05, 600 requests: ≈ 4 minutes
#   DEVICES=32 RATE=0.84 COUNT=300 scripts/measure-live-backfill.sh   # smaller
# Needs port PORT (18741) free on 127.0.0.1. Every emulated worker and the serving loop share this machine's cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
DEVICES="${DEVICES:-128}"
SCALE="${SCALE:-0.05}"
RATE="${RATE:-3.343}"
COUNT="${COUNT:-600}"
SEED="${SEED:-1}"
PAIRS="${PAIRS:-1}"
PORT="${PORT:-18741}"
out="$(mktemp -d)"
if ss -ltn | grep -q "127.0.0.1:$PORT "; then echo "measure-live-backfill: port $PORT is in use; stop that server first" >&2; exit 1; fi
# flux-reference holds 2048² images: above serve's default limits
limits=(--Trident:Limits:MaxWidth 4096 --Trident:Limits:MaxHeight 4096 --Trident:Limits:MaxActivationGb 0
  --Trident:Limits:MaxPredictedSeconds 0 --Trident:Serving:QueueCapacity 4000 --Trident:Jobs:Capacity 8000)

server=""
stop() { # the launcher execs the server: its pid is the server's
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi
}
trap stop EXIT

run() { # run BACKFILL PAIR
  local label="$1-$2" log="$out/serve-$1-$2.log"
  ./trident serve --urls "http://127.0.0.1:$PORT" --emulate flux --devices "$DEVICES" --time-scale "$SCALE" \
    --Trident:Storage:Directory "$out/store-$label" --Trident:Serving:BackfillHeldDevices "$1" "${limits[@]}" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ready" 2>/dev/null | grep -q 200 && break
    kill -0 "$server" 2>/dev/null || { echo "measure-live-backfill: the server stopped; its log:" >&2; cat "$log" >&2; exit 1; }
    sleep 2
  done
  ./trident loadgen --url "http://127.0.0.1:$PORT" --workload flux-reference --rate "$RATE" --time-scale "$SCALE" --count "$COUNT" \
    --duration 3600 --timeout 600 --seed "$SEED" --out "$out/live-$label.csv" >"$out/loadgen-$label.txt" 2>&1
  # the requests run through a backfill lane on a held device (/metrics)
  local backfills
  backfills=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^trident_backfills_total/ {print $2}')
  stop
  python3 - "$out/live-$label.csv" "$1" "$SCALE" "${backfills:-0}" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
scale = float(sys.argv[3])
met = sum(r['met'] == 'true' for r in rows) / max(1, len(rows))
# every request: one not served counts as a miss with an infinite latency
lat = sorted(float(r['measured_s']) / scale if r['measured_s'] else float('inf') for r in rows)
served = [x for x in lat if x != float('inf')]
mean = sum(served) / max(1, len(served))
p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float('nan')
print(f"live backfill_held={sys.argv[2]:5}  requests={len(rows)}  attainment={met:.3f}  mean_s={mean:.2f} (served {len(served)})  "
      f"p95_s={p95:.2f}  backfilled={sys.argv[4]}")
PY
}

echo "measure-live-backfill: $DEVICES emulated flux devices, time scale $SCALE, flux-reference at $RATE req/s, $COUNT requests, seed $SEED (load average $(cut -d' ' -f1-3 /proc/loadavg))"
for pair in $(seq 1 "$PAIRS"); do
  run true "$pair" | tee -a "$out/runs.txt"
  run false "$pair" | tee -a "$out/runs.txt"
done
if [ "$PAIRS" -gt 1 ]; then
  python3 - "$out/runs.txt" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.search(r"backfill_held=(\w+).*attainment=([\d.]+)\s+mean_s=([\d.]+).*p95_s=([\d.]+|inf)", line)
    if m: runs.setdefault(m[1], []).append(tuple(float(x) for x in m.groups()[1:]))
for k in ("true", "false"):
    xs = runs.get(k, [])
    if xs:
        print(f"median backfill_held={k:5}  attainment={statistics.median(x[0] for x in xs):.3f}  "
              f"mean_s={statistics.median(x[1] for x in xs):.2f}  p95_s={statistics.median(x[2] for x in xs):.2f}  ({len(xs)} runs)")
PY
fi
echo "simulated, the same trace (trident simulate --seed $SEED, $DEVICES devices):"
./trident simulate --workload flux-reference --rate "$RATE" --seed "$SEED" --count "$COUNT" --devices "$DEVICES" --policies Trident 2>&1 \
  | grep -A1 '^policy ' | cut -c1-160 || true
echo "files: $out"
