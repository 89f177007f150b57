#!/usr/bin/env bash
# The distillation experiment of docs/training.md: the TKRE-pretrained MiniLM-L6 (stage 1 of
# scripts/experiments/pretrain-fewrel.sh, the best pre-trained model) teaches a 3-layer student made of
# layers 1, 3, 5 of all-MiniLM-L6-v2, on the same corpus as pre-training. Also writes the
# same 3 layers untrained ("truncated"), the equal-size baseline, and a variant taught by the
# base model. Resumes if interrupted.
# Runs in $TKRE_CACHE/distill-runs; then scripts/experiments/accuracy-report.sh adds their rows.
#   bash scripts/experiments/distill.sh     (extra flags for `tkre distill`: DISTILL_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
source scripts/experiments/corpus.sh
runs="${TKRE_DISTILL_RUNS:-$TKRE_CACHE/distill-runs}"
teacher="${TEACHER:-${TKRE_PRETRAIN_RUNS:-$TKRE_CACHE/pretrain-runs}/mslm}"
bash scripts/setup/fetch-base-model.sh >/dev/null
build_tkre
if [ ! -f "$teacher/model.safetensors" ]; then
  echo "no teacher in $teacher: run scripts/experiments/pretrain-fewrel.sh first (or set TEACHER=DIR)" >&2
  exit 2
fi
if [ ! -f "$runs/truncated/model.safetensors" ]; then
  "$tkre" distill "${corpus[@]}" --teacher "$teacher" --student-layers 1,3,5 --max-steps 0 \
    --out "$runs/truncated" --quiet
fi
if [ ! -f "$runs/student/model.safetensors" ]; then
  "$tkre" distill "${corpus[@]}" --teacher "$teacher" --student-layers 1,3,5 \
    --learning-rate 1e-4 --epochs 2 --out "$runs/student" --resume ${DISTILL_FLAGS:-}
fi
# Variant: the base model as the teacher (it scores above the TKRE-pretrained ones).
if [ ! -f "$runs/student-base-teacher/model.safetensors" ]; then
  "$tkre" distill "${corpus[@]}" --teacher "$TKRE_CACHE/models/all-MiniLM-L6-v2" --student-layers 1,3,5 \
    --learning-rate 1e-4 --epochs 2 --out "$runs/student-base-teacher" --resume ${DISTILL_FLAGS:-}
fi
