#!/usr/bin/env bash
# Trident-preempt's attainment on the mixed image + video batches workload over four seeds × four image rates, the sweep
# docs/policies.md ("Preemption for latency") reports: one line per run (seed, rate, attainment, mean latency of completed
# requests in s), then the means. Extra arguments go to every `trident simulate` (e.g. --preempt-for-deadlines-only for the
# rule before preemption for latency). Deterministic; ≈ 5 s a run on 2 cores.
#
#   scripts/preemption-sweep.sh
#   scripts/preemption-sweep.sh --preempt-for-deadlines-only
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for seed in 42 1 2 3; do
  for rate in 0.12 0.30 0.40 0.50; do
    line=$(./trident simulate --workload mixed-hunyuanvideo-batches --slo-scale 2 --policies Trident-preempt --rate "$rate" --seed "$seed" --format csv "$@" \
      | python3 -c "import csv,sys; r=next(csv.DictReader(sys.stdin)); print(r['slo_attainment'], r['completed_mean_s'])")
    echo "$seed $rate $line" | tee -a "$results"
  done
done
awk '{s+=$3; if ($2 != "0.12") {t+=$3; n++}} END {printf "mean attainment %.4f over all %d runs, %.4f at 0.30-0.50 req/s\n", s/NR, NR, t/n}' "$results"
