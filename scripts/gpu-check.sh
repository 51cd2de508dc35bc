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
say() { echo "$*" | tee -a "$results"; }
step() {  # step NAME command…: runs it, appends its output to the results, records failure
  local name="$1"; shift
  say "== $name: $*"
  if "$@" 2>&1 | tee -a "$results"; then say "== $name: ok"; else say "== $name: FAILED"; failed=1; fi
}
trident() { TRIDENT_HOME="$here" dotnet "$here/src/Trident.Api/bin/Release/net10.0/trident.dll" "$@"; }

say "gpu-check $stamp on $(hostname) ($(nproc) cores)"
step build dotnet build src/Trident.Api -c Release -nologo -v q || true
[ "$failed" = 0 ] || { say "result: build failed"; exit 1; }

step profile-cpu trident profile --pipeline tiny --shapes 256x256,512x512,1024x1024 --degrees 1 --steps 2 --repeats 2 --device cpu --out "$dir/profile-cpu.json"
step bench-runtime-cpu trident bench runtime --pipeline tiny --device cpu

gpus=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpus="$(nvidia-smi -L | grep -c '^GPU ')"; fi
if [ "$gpus" = 0 ]; then
  say "cuda: no CUDA device (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'finds no GPU' || echo 'is not installed')); CPU part done"
  [ "$failed" = 0 ] && say "result: ok (CPU only)" || say "result: FAILED"
  exit "$failed"
fi
say "cuda: $gpus device(s)"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv 2>&1 | tee -a "$results"

step tests-cuda dotnet run --project tests/Trident.Tests -c Release -- --filter cuda --no-spinner
step profile-cuda trident profile --pipeline tiny --shapes 256x256,512x512,1024x1024 --degrees 1 --steps 4 --repeats 3 --device cuda:0 --out "$dir/profile-cuda0.json"
step bench-runtime-cuda trident bench runtime --pipeline tiny --device cuda:0

port=18080
log="$dir/serve-cuda.log"
say "== serve-cuda: trident serve --urls http://127.0.0.1:$port --Trident:Devices:Kind cuda --Trident:Devices:Count $gpus"
trident serve --urls "http://127.0.0.1:$port" --Trident:Devices:Kind cuda --Trident:Devices:Count "$gpus" > "$log" 2>&1 &
server=$!
ready=0
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 1
done
if [ "$ready" = 1 ]; then
  curl -fs "http://127.0.0.1:$port/v1/cluster" >> "$results"; echo >> "$results"
  step loadgen-cuda trident loadgen --workload tiny-poisson --url "http://127.0.0.1:$port" --duration 60 --out "$dir/loadgen-cuda.csv"
else
  say "== serve-cuda: FAILED (not ready; see $log)"; tail -20 "$log" | tee -a "$results"; failed=1
fi
kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
[ "$failed" = 0 ] && say "result: ok" || say "result: FAILED"
exit "$failed"
