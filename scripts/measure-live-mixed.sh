#!/usr/bin/env bash
# Live step-boundary preemption on the evaluated mixed image + video workload (issue 12), side by side: the trace
# `trident evaluate` simulates (`mixed-hunyuanvideo-batches`: images Poisson at 0.12 req/s, every 1200 s a batch of 24
# 129-frame videos; SLO scale 2) replayed on DEVICES emulated hunyuanvideo devices (no model: each stage task sleeps
# the scaled profile's time and hands real bytes on), once with Trident:Serving:Preemption false and once true, each
# on a fresh server. loadgen scales the trace's arrivals to the server's clock (`--time-scale`). Prints, per run,
# attainment, images' and videos' attainment, images' P95 latency (in the server's scaled seconds) and the
# suspensions and decode pauses /metrics counted, then the simulator's prediction for the same trace (`simulate --seed SEED`).
#
#   scripts/measure-live-mixed.sh                      # 128 devices, time scale 0.02, 600 requests: ≈ 4 minutes
#   DEVICES=16 COUNT=200 scripts/measure-live-mixed.sh  # smaller
#   PLAN_FOR=mix scripts/measure-live-mixed.sh         # both servers start with a placement planned for the trace's mix
#                                                      # (Trident:Serving:PlanFor, as the simulator's initial placement is)
#                                                      # instead of for the default image; or PLAN_FOR='HxW[xF][@S][:share],…'
# Needs port 8080 free (the servers bind 127.0.0.1:8080 only). The machine runs every emulated worker and the
# serving loop: on 2 cores, the loop's own time weighs 1 / SCALE more against the stages than on real devices.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
DEVICES="${DEVICES:-128}"
SCALE="${SCALE:-0.02}"
COUNT="${COUNT:-600}"
SEED="${SEED:-1}"
PLAN_FOR="${PLAN_FOR:-}"
# the trace's mix: images of the two sizes, and their 129-frame videos (24 every 1200 s against 0.12 images/s: ≈ 1 in 7)
if [ "$PLAN_FOR" = mix ]; then PLAN_FOR="720x1280@50:0.43,960x544@50:0.43,720x1280x129@50:0.07,960x544x129@50:0.07"; fi
out="$(mktemp -d)"
if ss -ltn | grep -q '127.0.0.1:8080 '; then echo "measure-live-mixed: port 8080 is in use; stop that server first" >&2; exit 1; fi

# The workload's videos are 129 frames of up to 1280 pixels and ≈ 30 GB of activations: above serve's default limits.
limits=(--Trident:Serving:SloScale 2 --Trident:Limits:MaxFrames 129 --Trident:Limits:MaxHeight 1280 --Trident:Limits:MaxWidth 1280
  --Trident:Limits:MaxActivationGb 80 --Trident:Serving:QueueCapacity 2000 --Trident:Jobs:Capacity 4000)
if [ -n "$PLAN_FOR" ]; then limits+=(--Trident:Serving:PlanFor "$PLAN_FOR"); fi

server=""
stop() { # the launcher execs the server: its pid is the server's
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; fi
}
trap stop EXIT

run() { # run PREEMPTION
  local log="$out/serve-$1.log"
  ./trident serve --emulate hunyuanvideo --devices "$DEVICES" --time-scale "$SCALE" --Trident:Serving:Preemption "$1" "${limits[@]}" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ready 2>/dev/null | grep -q 200 && break
    kill -0 "$server" 2>/dev/null || { echo "measure-live-mixed: the server stopped; its log:" >&2; cat "$log" >&2; exit 1; }
    sleep 2
  done
  ./trident loadgen --workload mixed-hunyuanvideo-batches --time-scale "$SCALE" --count "$COUNT" --duration 3600 --timeout 600 \
    --seed "$SEED" --out "$out/live-$1.csv" >"$out/loadgen-$1.txt" 2>&1
  local metrics suspensions pauses
  metrics=$(curl -s http://127.0.0.1:8080/metrics)
  suspensions=$(awk '/^trident_suspensions_total/ {print $2}' <<<"$metrics")
  pauses=$(awk '/^trident_decode_pauses_total/ {print $2}' <<<"$metrics")
  stop
  python3 - "$out/live-$1.csv" "$1" "${suspensions:-0}" "${pauses:-0}" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def share(xs): return sum(r['met'] == 'true' for r in xs) / max(1, len(xs))
images = [r for r in rows if r['frames'] == '1']
videos = [r for r in rows if r['frames'] != '1']
lat = sorted(float(r['measured_s']) for r in images if r['measured_s'])
p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float('nan')
print(f"live preemption={sys.argv[2]:5}  attainment={share(rows):.3f}  images={share(images):.3f} ({len(images)})  "
      f"images_p95_s={p95:.2f} (scaled)  videos={share(videos):.3f} ({len(videos)})  suspensions={sys.argv[3]}  decode_pauses={sys.argv[4]}")
PY
}

echo "measure-live-mixed: $DEVICES emulated hunyuanvideo devices, time scale $SCALE, $COUNT requests, seed $SEED${PLAN_FOR:+, initial placement planned for $PLAN_FOR} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
run false
run true
echo "simulated, the same trace (trident simulate --seed $SEED, $DEVICES devices):"
./trident simulate --workload mixed-hunyuanvideo-batches --slo-scale 2 --rate 0.12 --seed "$SEED" --count "$COUNT" --devices "$DEVICES" \
  --policies Trident,Trident-preempt --parallel 2 2>&1 | grep -A2 '^policy .*images_attainment' | cut -c1-150
echo "files: $out"
