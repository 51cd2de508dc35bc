#!/usr/bin/env bash
# GPU check: the one script to run on a machine with an NVIDIA GPU (docs/runtime.md, "GPU check").
#
#   scripts/gpu-check.sh
#
# 1. builds the trident executable (the CUDA tests build the test project themselves);
# 2. CPU part: profiles the bundled tiny pipeline at 256², 512² and 1024² on the CPU, and runs
#    `trident bench runtime` on the CPU;
# 3. when nvidia-smi finds a GPU: runs the tests that need CUDA (Expecto test list "cuda"), profiles the tiny
#    pipeline at 256²–1024² on cuda:0, runs `bench runtime --device cuda:0`, serves with every GPU as a
#    CUDA device (Trident:Devices:Kind=cuda) and drives it with `trident loadgen` for 60 s.
# Every number goes to one results file: $OUT/gpu-check.txt when $OUT is set, else
# .cache/gpu-check/gpu-check-<UTC time>.txt (profiles and loadgen CSVs beside it).
#
# On a GPU machine with no .NET SDK and no package registry (the workplace's lent machines): pack the built output
# here with scripts/gpu-kit.sh, send its parts there into one folder, and run `TRIDENT_KIT=that-folder
# scripts/gpu-check.sh`: the script then unpacks the .NET runtime, the built test output and ONNX Runtime's CUDA
# provider into /tmp/trident-kit instead of building, finds the CUDA libraries the provider links (cudart, cuBLAS,
# cuBLASLt, cuRAND, cuDNN — e.g. the ones PyTorch's wheels bring) and puts their folders on LD_LIBRARY_PATH.
# CHECKS picks the parts to run (default: all but measure-live): tests (the "cuda" tests), profile, bench, serve
# (serve + loadgen), measure-live (scripts/measure-live.sh's batching on / off pair on the CUDA devices; also turned on
# by MEASURE_LIVE=1), cpu (the CPU part) — e.g. CHECKS="tests measure-live" when device time is short.
# STEP_TIMEOUT (seconds, default 240) bounds each step; BENCH_MAX_RUNS (default 80) caps `bench runtime`'s pairs;
# LOADGEN_SECONDS (default 60) and READY_TIMEOUT (default 180) bound the serving part.
#
# Exit codes: 0 — everything that could run here passed; without a CUDA device the results say
# "cuda: no CUDA device" and the script still exits 0 after the CPU part. 1 — a step failed (the results file
# names it).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
if [ -n "${OUT:-}" ]; then dir="$OUT"; results="$OUT/gpu-check.txt"; else dir="$here/.cache/gpu-check"; results="$dir/gpu-check-$stamp.txt"; fi
mkdir -p "$dir"
: > "$results"
failed=0
step_timeout="${STEP_TIMEOUT:-240}"
say() { echo "$*" | tee -a "$results"; }
step() {  # step NAME command…: runs it (at most step_timeout s), appends its output to the results, records failure
  local name="$1"; shift
  say "== $name: $*"
  local t0=$SECONDS
  if timeout "$step_timeout" bash -c '"$@"' _ "$@" 2>&1 | tee -a "$results"; then say "== $name: ok ($((SECONDS - t0)) s)"
  else say "== $name: FAILED ($((SECONDS - t0)) s; timeout ${step_timeout} s)"; failed=1; fi
}

say "gpu-check $stamp on $(hostname) ($(nproc) cores)"
if [ -n "${TRIDENT_KIT:-}" ]; then
  kit="$(cd "$TRIDENT_KIT" && pwd)"; run_dir=/tmp/trident-kit
  say "kit: $kit ($(ls "$kit" | tr '\n' ' '))"
  (cd "$kit" && sha256sum -c --quiet SHA256SUMS) 2>&1 | tee -a "$results" || { say "result: the kit's parts are incomplete or damaged"; exit 1; }
  rm -rf "$run_dir"; mkdir -p "$run_dir/dotnet" "$run_dir/bin"
  tar -C "$run_dir/dotnet" -xJf "$kit/dotnet.tar.xz" && tar -C "$run_dir/bin" -xJf "$kit/bin.tar.xz" \
    && cat "$kit"/cuda.xz.[0-9][0-9] | xz -d > "$run_dir/bin/libonnxruntime_providers_cuda.so" \
    || { say "result: unpacking the kit failed"; exit 1; }
  export DOTNET_ROOT="$run_dir/dotnet" PATH="$run_dir/dotnet:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1
  if ! ldconfig -p 2>/dev/null | grep -q libicuuc; then export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1; say "kit: no libicu here: invariant globalization"; fi
  bin="$run_dir/bin"
  # The CUDA provider links libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10 and loads cuDNN 9.
  libdirs=""
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudnn.so.9 libcufft.so.12; do
    found="$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l { print $NF; exit }')"
    [ -n "$found" ] || found="$(find / -xdev \( -path /proc -o -path /sys \) -prune -o -name "$lib*" -print 2>/dev/null | head -1)"
    if [ -n "$found" ]; then say "kit: $lib -> $found"; libdirs="$libdirs:$(dirname "$found")"; else say "kit: $lib NOT FOUND"; fi
  done
  mkdir -p "$run_dir/extra-lib" && tar -C "$run_dir/extra-lib" -xJf "$kit/extra-lib.tar.xz"
  export LD_LIBRARY_PATH="${libdirs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:$run_dir/extra-lib"
  say "kit: dotnet $(dotnet --list-runtimes 2>&1 | tr '\n' ';')"
  run_tests() { dotnet "$bin/Trident.Tests.dll" "$@"; }
else
  bin="$here/src/Trident.Api/bin/Release/net10.0"
  step build dotnet build src/Trident.Api -c Release -nologo -v q || true
  [ "$failed" = 0 ] || { say "result: build failed"; exit 1; }
  run_tests() { dotnet run --project tests/Trident.Tests -c Release -- "$@"; }
fi
trident() { TRIDENT_HOME="$here" dotnet "$bin/trident.dll" "$@"; }
export -f trident run_tests; export here bin
# The CPU part (a baseline for the CUDA numbers; the whole check where there is no GPU).
cpu_part() {
  step profile-cpu trident profile --pipeline tiny --shapes 256x256,512x512,1024x1024 --degrees 1 --steps 2 --repeats 2 --device cpu --out "$dir/profile-cpu.json"
  step bench-runtime-cpu trident bench runtime --pipeline tiny --device cpu --max-runs "${BENCH_MAX_RUNS:-80}"
}
checks="${CHECKS:-tests profile bench serve cpu}"
[ "${MEASURE_LIVE:-0}" = 1 ] && checks="$checks measure-live"
wants() { case " $checks " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
finish() { [ "$failed" = 0 ] && say "result: ok$1" || say "result: FAILED"; exit "$failed"; }

gpus=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpus="$(nvidia-smi -L | grep -c '^GPU ')"; fi
if [ "$gpus" = 0 ]; then
  say "cuda: no CUDA device (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'finds no GPU' || echo 'is not installed'))"
  wants cpu && cpu_part
  finish " (CPU only)"
fi
say "cuda: $gpus device(s)"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 | tee -a "$results"

say "checks: $checks"
wants tests && step tests-cuda run_tests --filter cuda --no-spinner --summary
wants profile && step profile-cuda trident profile --pipeline tiny --shapes 256x256,512x512,1024x1024 --degrees 1 --steps 4 --repeats 3 --device cuda:0 --out "$dir/profile-cuda0.json"
wants bench && step bench-runtime-cuda trident bench runtime --pipeline tiny --device cuda:0 --max-runs "${BENCH_MAX_RUNS:-80}"

serve_part() {
  port=18080
  log="$dir/serve-cuda.log"
  say "== serve-cuda: trident serve --urls http://127.0.0.1:$port --Trident:Devices:Kind cuda --Trident:Devices:Count $gpus"
  trident serve --urls "http://127.0.0.1:$port" --Trident:Devices:Kind cuda --Trident:Devices:Count "$gpus" > "$log" 2>&1 &
  server=$!
  ready=0
  for _ in $(seq 1 "${READY_TIMEOUT:-180}"); do
    if curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$server" 2>/dev/null || break
    sleep 1
  done
  if [ "$ready" = 1 ]; then
    curl -fs "http://127.0.0.1:$port/v1/cluster" >> "$results"; echo >> "$results"
    step loadgen-cuda trident loadgen --workload tiny-poisson --url "http://127.0.0.1:$port" --duration "${LOADGEN_SECONDS:-60}" --out "$dir/loadgen-cuda.csv"
    curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^trident_(device|requests_total|slo_attainment|stage_latency_seconds_(sum|count)|request_latency_seconds_(sum|count))' | head -60 >> "$results"
  else
    say "== serve-cuda: FAILED (not ready; see $log)"; failed=1
  fi
  tail -30 "$log" >> "$results"
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
}
wants serve && serve_part
# MEASURE_LIVE=1: scripts/measure-live.sh on the CUDA devices (batching on vs off at one fixed rate; SIZE, RATE, COUNT,
# DURATION, PARTS and PAIRS pass through to it; one pair by default here, device time being short; EXTRA_SERVE_ARGS adds
# server options, e.g. "--Trident:Devices:Cuda:CudnnConvAlgoSearch Heuristic"). The rate must be above both servers'
# capacities for the ratio to measure the batches (its default, 80 req/s, is for the CPU devices; 150 at 256², 8 steps
# on an H200).
if wants measure-live; then
  step measure-live-cuda env TRIDENT_HOME="$here" TRIDENT="dotnet $bin/trident.dll" \
    SERVE_ARGS="--Trident:Devices:Kind cuda --Trident:Devices:Count $gpus ${EXTRA_SERVE_ARGS:-}" PARTS="${PARTS:-batching}" PAIRS="${PAIRS:-1}" scripts/measure-live.sh
  for f in /tmp/trident-measure-live-*.log; do [ -f "$f" ] && { say "-- tail of $f"; tail -15 "$f" >> "$results"; }; done
fi
wants cpu && cpu_part
finish ""
