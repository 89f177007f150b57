#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 60 s each):
#   bash scripts/fuzz.sh [SECONDS]
# A crash leaves its input under fuzz/artifacts/TARGET/; turn it into a regression test in
# tests/fuzz_regressions.rs (the inputs found so far are there).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
# cargo-fuzz passes -Z flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$TKRE_CACHE/target-fuzz"
for target in marked_sentence support_set; do
  echo "== fuzzing $target for ${seconds}s" >&2
  (cd fuzz && cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096)
done
