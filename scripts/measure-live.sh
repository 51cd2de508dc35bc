#!/usr/bin/env bash
# Live serving throughput, side by side in one session (issues 11 and 12), on the tiny pipeline:
#   1. batching: the same fixed-rate, same-shape load (`loadgen --workload tiny-same`) against a server with
#      batching on (Trident:Serving:MaxBatch 8, the default) and one with it off (MaxBatch 1), each started
#      fresh and warmed up; both runs print throughput, where a request's time goes (phases_ms), the stage work per
#      request and batch (stage_work), the devices' busy seconds and utilisation, and the CPU seconds the device
#      threads spent per request (worker_cpu: what the ONNX Runtime runs cost, whatever else the machine runs);
#      then the on / off ratios of both; PAIRS such pairs, and the medians of both ratios;
#   2. saturation: twice the server's capacity by its profile (`--load 2`, small requests), batching off:
#      utilisation, completed rate, and the completed rate over the capacity by the profile measured at start
#      and by this run's own stage service times (goal ≥ 0.9 for utilisation and completed / capacity), and the
#      devices' idle gaps while work waited.
# Each server profiles this machine at its first start (cached in .cache/profiles/), so the very first run takes a
# few minutes more; after that each server takes about a minute. Each server gets a warm-up (WARMUP requests, then the
# measured load again until the JIT's background tier-up compilation has settled: `settle`; not measured) so that
# start-up costs (JIT compilation, first sessions) are not in the numbers. The load average
# is printed before each run: other work on the machine slows the CPU devices and every number with them.
#
#   scripts/measure-live.sh                      # 64², 4 steps, 80 req/s for 10 s (the shape where a batch pays most)
#   SIZE=128 RATE=16 scripts/measure-live.sh     # another shape
# The batching rate is above both servers' capacity (here ≈ 25–30 req/s unbatched, 35–42 batched at 64²), so that
# throughput measures what each server can serve: at a rate the batching server keeps up with (40 req/s here) its
# throughput is the offered rate and the ratio is that rate over the unbatched capacity, not the batches' gain.
#   PARTS=saturation scripts/measure-live.sh     # one part only (batching | saturation)
#   PAIRS=5 PARTS=batching scripts/measure-live.sh   # more on / off pairs (3 by default; the medians are printed)
#   SERVE_ARGS="--Trident:Devices:Kind cuda" PARTS=batching scripts/measure-live.sh   # the same on GPU devices
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
SIZE="${SIZE:-64}"
STEPS="${STEPS:-4}"
RATE="${RATE:-80}"
DURATION="${DURATION:-10}"
COUNT_SET="${COUNT:-}"
COUNT="${COUNT:-400}"          # saturation part; the batching part sends RATE × DURATION unless COUNT is set
LOAD="${LOAD:-2}"
WARMUP="${WARMUP:-16}"
SETTLE_ROUNDS="${SETTLE_ROUNDS:-4}"   # at most this many rounds of the measured load before measuring (see settle)
SETTLE_JIT_S="${SETTLE_JIT_S:-0.5}"   # ... until the JIT's tier-up thread used less CPU than this in one round
PARTS="${PARTS:-batching saturation}"
PAIRS="${PAIRS:-3}"          # batching: on / off pairs, one after the other; each pair's ratios, then their medians
PORT="${PORT:-18731}"
SERVE_ARGS="${SERVE_ARGS:-}"  # more `trident serve` arguments for every server (e.g. the device kind)
TRIDENT="${TRIDENT:-./trident}"  # the command that runs trident (scripts/gpu-check.sh's kit mode gives a prebuilt one)
server=""

stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap stop EXIT

# tiny_load ARGS...: loadgen's same-shape tiny-pipeline load against the server on $PORT (ARGS: count, rate, …)
tiny_load() {
  $TRIDENT loadgen --url "http://127.0.0.1:$PORT" --workload tiny-same --size "$SIZE" --steps "$STEPS" --timeout 120 "$@"
}

# serve LABEL ARGS...: starts a fresh server on $PORT, waits until it is ready and warms it up
serve() {
  local label="$1"; shift
  # shellcheck disable=SC2086 # SERVE_ARGS is split into arguments on purpose
  $TRIDENT serve --urls "http://127.0.0.1:$PORT" $SERVE_ARGS "$@" > "/tmp/trident-measure-live-$label.log" 2>&1 &
  server=$!
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/ready" > /dev/null; then
      tiny_load --count "$WARMUP" --rate 8 --duration 10 > /dev/null 2>&1 || true
      return 0
    fi
    kill -0 "$server" 2>/dev/null || { echo "the server ($label) exited; see /tmp/trident-measure-live-$label.log" >&2; exit 1; }
    sleep 1
  done
  echo "the server ($label) was not ready after 600 s" >&2
  exit 1
}

# CPU seconds (user + system) of the server's device worker threads (trident-worker-*), from /proc
worker_cpu() {
  local total=0 t
  for t in /proc/"$server"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      trident-worke*) total=$(awk -v a="$total" '{ sub(/.*\) /, ""); print a + ($12 + $13) / 100 }' "$t/stat") ;;
    esac
  done
  echo "$total"
}

# settle LOADGEN-ARGS...: plays the measured load (not measured) until the runtime's background JIT compilation has
# settled — its tier-up thread (".NET Tiered Compilation") used < SETTLE_JIT_S CPU seconds in the last round — at most
# SETTLE_ROUNDS rounds. Without it the measured run paid for the JIT: on this machine 2.8–4.7 CPU-seconds of tier-up
# compilation in each of the first two 10 s runs at 80 req/s after a 16-request warm-up, and the batching server's
# throughput rose from 32–34 to 45–46 req/s once it had settled (2026-12-01).
settle() {
  local round before after jit
  for round in $(seq 1 "$SETTLE_ROUNDS"); do
    before=$(jit_threads)
    tiny_load --count "${LOADGEN_COUNT:-$COUNT}" --duration "$DURATION" "$@" > /dev/null 2>&1 || true
    after=$(jit_threads)
    # per thread: its CPU now minus its CPU before (0 for a thread started meanwhile); a tier-up thread that ended
    # meanwhile took its CPU with it, so such a round never counts as settled
    jit=$(printf '%s\n--\n%s\n' "$before" "$after" | awk '
      $0 == "--" { after = 1; next }
      NF == 2 && !after { b[$1] = $2 }
      NF == 2 && after { seen[$1] = 1; total += $2 - ($1 in b ? b[$1] : 0) }
      END { for (t in b) if (!(t in seen)) gone = 1; if (gone) print "ended"; else printf "%.2f", total }')
    if [ "$jit" != ended ] && awk -v j="$jit" -v lim="$SETTLE_JIT_S" 'BEGIN { exit !(j < lim) }'; then
      echo "warm-up: the JIT settled after $round round(s) of the measured load (tier-up CPU ${jit} s in the last)"
      return 0
    fi
  done
  echo "warm-up: the JIT had not settled after $SETTLE_ROUNDS rounds (tier-up CPU in the last: ${jit}); measuring anyway"
}

# the server's JIT tier-up threads (".NET Tiered Compilation", truncated by the kernel): one "tid cpu-seconds" line each
jit_threads() {
  local t
  for t in /proc/"$server"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      '.NET Tiered'*) awk -v id="${t##*/}" '{ sub(/.*\) /, ""); print id, ($12 + $13) / 100 }' "$t/stat" 2>/dev/null ;;
    esac
  done
}

# loadgen LABEL ARGS...: one measured run; prints loadgen's lines and the device threads' CPU per request
loadgen() {
  local label="$1"; shift
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  local before out served after
  before=$(worker_cpu)
  out=$(tiny_load --count "${LOADGEN_COUNT:-$COUNT}" --duration "$DURATION" "$@" 2>/dev/null)
  after=$(worker_cpu)
  echo "$out" | grep -E '^(workload|measured|throughput|phases_ms|stage_work|devices|capacity|gaps|  error)'
  served=$(echo "$out" | sed -n 's/^throughput: succeeded=\([0-9]*\).*/\1/p')
  awk -v b="$before" -v a="$after" -v n="${served:-0}" 'BEGIN { if (n > 0) printf "worker_cpu: cpu_s=%.2f cpu_ms_per_request=%.1f\n", a - b, (a - b) * 1000 / n }'
  echo "$out" | sed -n 's/^throughput: .*requests_per_s=\([0-9.]*\).*/\1/p' > "/tmp/trident-measure-live-$label.rate"
  awk -v b="$before" -v a="$after" -v n="${served:-0}" 'BEGIN { if (n > 0) print (a - b) * 1000 / n }' > "/tmp/trident-measure-live-$label.cpu"
}

$TRIDENT --help > /dev/null 2>&1 # builds when the sources changed
for part in $PARTS; do
  case "$part" in
    batching)
      if [ -z "${COUNT_SET:-}" ]; then LOADGEN_COUNT=$(awk -v r="$RATE" -v d="$DURATION" 'BEGIN { printf "%d", r * d + 0.5 }'); fi
      : > /tmp/trident-measure-live-pairs
      for pair in $(seq 1 "$PAIRS"); do
        echo "== pair $pair of $PAIRS: batching on (MaxBatch 8): tiny-same ${SIZE}², $STEPS steps, $RATE req/s for $DURATION s"
        serve on --Trident:Serving:MaxBatch 8
        settle --rate "$RATE"
        loadgen on --rate "$RATE"
        curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^trident_batch_size_(sum|count)' || true
        stop
        echo "== pair $pair of $PAIRS: batching off (MaxBatch 1): the same load"
        serve off --Trident:Serving:MaxBatch 1
        settle --rate "$RATE"
        loadgen off --rate "$RATE"
        stop
        paste /tmp/trident-measure-live-on.rate /tmp/trident-measure-live-off.rate /tmp/trident-measure-live-on.cpu /tmp/trident-measure-live-off.cpu |
          awk '$2 > 0 && $3 > 0 { printf "%.4f %.4f\n", $1 / $2, $4 / $3 }' | tee -a /tmp/trident-measure-live-pairs |
          awk '{ printf "on / off: throughput %.2fx (goal >= 1.5), device CPU per request %.2fx less\n", $1, $2 }'
      done
      LOADGEN_COUNT=""
      # the medians over the pairs (the middle value, or the mean of the middle two)
      median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
      echo "on / off over $PAIRS pairs: throughput $(cut -d' ' -f1 /tmp/trident-measure-live-pairs | awk '{ printf "%.2fx ", $1 }')-> median $(cut -d' ' -f1 /tmp/trident-measure-live-pairs | median)x (goal >= 1.5); device CPU per request median $(cut -d' ' -f2 /tmp/trident-measure-live-pairs | median)x less"
      ;;
    saturation)
      echo "== saturation: tiny-same ${SIZE}², $STEPS steps at $LOAD × the server's capacity by its profile, batching off"
      serve saturation --Trident:Serving:MaxBatch 1
      settle --load "$LOAD"
      loadgen saturation --load "$LOAD"
      stop
      ;;
    *)
      echo "unknown part '$part' (batching, saturation)" >&2
      exit 2
      ;;
  esac
done
