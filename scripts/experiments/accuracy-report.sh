#!/usr/bin/env bash
# The accuracy report of issue 7 (docs/training.md, "Accuracy, size and speed"): FewRel 1.0 val, 1000
# episodes per setting, seed 1, for the base model, its fp16/int8 exports, the pre-trained
# models of scripts/experiments/pretrain-fewrel.sh and the distilled student of scripts/experiments/distill.sh when
# they exist. Writes reports/accuracy.{json,md,svg}; rows already evaluated on unchanged model
# files are reused, so running it again after an interruption resumes.
#   bash scripts/experiments/accuracy-report.sh            (EPISODES=N for a quicker, smaller run)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
bash scripts/setup/fetch-base-model.sh >/dev/null
build_tkre
base="$TKRE_CACHE/models/all-MiniLM-L6-v2"
runs="${TKRE_PRETRAIN_RUNS:-$TKRE_CACHE/pretrain-runs}"
exports="$TKRE_CACHE/web-models"

export_model() {  # SOURCE NAME PRECISION -> directory
  local out="$exports/$2-$3"
  if [ ! -f "$out/manifest.json" ]; then
    "$tkre" export --model "$1" --out "$out" --precision "$3" --name "$2 ($3)" >/dev/null
  fi
  echo "$out"
}

rows=(--row "base MiniLM-L6, the teachers' base (fp32)=$base"
      --row "base MiniLM-L6 fp16=$(export_model "$base" base fp16)"
      --row "base MiniLM-L6 int8=$(export_model "$base" base int8)")
for run in mslm scl two-stage; do
  [ -f "$runs/$run/model.safetensors" ] && rows+=(--row "teacher: MiniLM-L6 + TKRE $run=$runs/$run")
done
distilled="${TKRE_DISTILL_RUNS:-$TKRE_CACHE/distill-runs}"
if [ -f "$distilled/truncated/model.safetensors" ]; then
  rows+=(--row "3 layers of base, not distilled (fp32)=$distilled/truncated")
fi
# Students: taught by the TKRE stage-1 model (scripts/experiments/distill.sh's main run) and by the base
# model itself (a variant tried because the TKRE teachers score below their base), each in
# fp32 and exported to fp16 and int8.
for entry in "student=student: 3 layers taught by TKRE mslm" "student-base-teacher=student: 3 layers taught by the base model"; do
  run=${entry%%=*}; label=${entry#*=}
  if [ -f "$distilled/$run/model.safetensors" ]; then
    rows+=(--row "$label (fp32)=$distilled/$run"
           --row "$label, fp16=$(export_model "$distilled/$run" "$run" fp16)"
           --row "$label, int8=$(export_model "$distilled/$run" "$run" int8)")
  fi
done

# No FewRel relation is used in any training here (the synthetic corpus is TACRED's
# relations, PubMed sentences are unlabelled), so none is excluded.
# Browser latencies: bench/browser.js runs (the default model's, and others' written with
# TKRE_WEB_MODEL=DIR TKRE_BENCH_OUT=reports/bench-browser-NAME.json).
benches=()
for f in reports/bench-browser*.json; do [ -f "$f" ] && benches+=(--browser-bench "$f"); done
mkdir -p reports
"$tkre" eval --data ../shared/data/fewrel/val_wiki.json --report reports/accuracy \
  --episodes "${EPISODES:-1000}" --seed 1 "${rows[@]}" \
  --references reports/reference-published.json "${benches[@]}"
