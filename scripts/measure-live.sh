#!/usr/bin/env bash
# Live serving throughput, side by side in one session (issues 11 and 12), on the tiny pipeline:
#   1. batching: the same fixed-rate, same-shape load (`loadgen --workload tiny-same`) against a server with
#      batching on (Trident:Serving:MaxBatch 8, the default) and one with it off (MaxBatch 1), each started
#      fresh; both runs print throughput, the devices' busy seconds and utilisation over the run;
#   2. saturation: twice the server's capacity by its profile (`--load 2`, small requests), batching off:
#      utilisation and completed / capacity (goal ≥ 0.9 for both).
# Each server profiles this machine at its first start (cached in .cache/profiles/), so the first run takes a
# few minutes more. The load average is printed before each run: other work on the machine slows the CPU
# devices and every number with them.
#
#   scripts/measure-live.sh                      # 128² (tiny-same's shape), 4 steps, 16 req/s for 10 s
#   SIZE=64 RATE=40 scripts/measure-live.sh      # the smallest shape
#   PARTS=saturation scripts/measure-live.sh     # one part only (batching | saturation)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
SIZE="${SIZE:-128}"
STEPS="${STEPS:-4}"
RATE="${RATE:-16}"
DURATION="${DURATION:-10}"
COUNT="${COUNT:-400}"
LOAD="${LOAD:-2}"
PARTS="${PARTS:-batching saturation}"
PORT="${PORT:-18731}"
server=""

stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap stop EXIT

# serve LABEL ARGS...: starts a fresh server on $PORT and waits until it is ready
serve() {
  local label="$1"; shift
  ./trident serve --urls "http://127.0.0.1:$PORT" "$@" > "/tmp/trident-measure-live-$label.log" 2>&1 &
  server=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$PORT/ready" > /dev/null && return 0
    kill -0 "$server" 2>/dev/null || { echo "the server ($label) exited; see /tmp/trident-measure-live-$label.log" >&2; exit 1; }
    sleep 1
  done
  echo "the server ($label) was not ready after 600 s" >&2
  exit 1
}

loadgen() {
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  ./trident loadgen --url "http://127.0.0.1:$PORT" --workload tiny-same --size "$SIZE" --steps "$STEPS" --count "$COUNT" \
    --duration "$DURATION" --timeout 300 "$@" 2>/dev/null | grep -E '^(workload|measured|throughput|devices|capacity|  error)'
}

./trident --help > /dev/null 2>&1 # builds when the sources changed
for part in $PARTS; do
  case "$part" in
    batching)
      echo "== batching on (MaxBatch 8): tiny-same ${SIZE}², $STEPS steps, $RATE req/s for $DURATION s"
      serve on --Trident:Serving:MaxBatch 8
      loadgen --rate "$RATE"
      curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^trident_batch_size_(sum|count)' || true
      stop
      echo "== batching off (MaxBatch 1): the same load"
      serve off --Trident:Serving:MaxBatch 1
      loadgen --rate "$RATE"
      stop
      ;;
    saturation)
      echo "== saturation: tiny-same ${SIZE}², $STEPS steps at $LOAD × the server's capacity by its profile, batching off"
      serve saturation --Trident:Serving:MaxBatch 1
      loadgen --load "$LOAD"
      stop
      ;;
    *)
      echo "unknown part '$part' (batching, saturation)" >&2
      exit 2
      ;;
  esac
done
