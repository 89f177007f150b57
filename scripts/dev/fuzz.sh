#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 60 s each):
#   bash scripts/dev/fuzz.sh [SECONDS]
# A crash leaves its input under fuzz/artifacts/TARGET/; turn it into a regression test in
# tests/fuzz_regressions.rs (the inputs found so far are there).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
# cargo-fuzz passes -Z flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$TKRE_CACHE/target-fuzz"
found=0
results=()
for target in ${TARGETS:-marked_sentence support_set fewrel_record model_files llm_answers}; do
  echo "== fuzzing $target for ${seconds}s" >&2
  mkdir -p "fuzz/corpus/$target"
  log="$TKRE_CACHE/fuzz-$target.log"
  status=0
  (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096) >"$log" 2>&1 || status=$?
  # libFuzzer ends with "Done N runs in S second(s)"; its status lines carry "cov: N".
  runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -1)
  cov=$(grep -oE " cov: [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+" || true)
  if [ "$status" -ne 0 ]; then
    found=1
    echo "   $target: FOUND A FAILURE (see $log and fuzz/artifacts/$target/)" >&2
    grep -E "panicked|ERROR|SUMMARY" "$log" | head -5 >&2 || true
  else
    echo "   $target: ${runs:-?} runs, coverage ${cov:-?} edges, no failure" >&2
  fi
  results+=("{\"target\": \"$target\", \"seconds\": $seconds, \"runs\": ${runs:-null}, \"coverage_edges\": ${cov:-null}, \"failed\": $([ "$status" -ne 0 ] && echo true || echo false)}")
done
mkdir -p reports
(IFS=,; printf '{"command": "bash scripts/dev/fuzz.sh %s", "date": "%s", "targets": [%s]}\n' "$seconds" "$(date -u +%F)" "${results[*]}") > reports/fuzz.json
exit "$found"
