#!/usr/bin/env bash
# The relation pre-training experiment of docs/training.md on the Wikidata synthetic corpus
# (data/corpus/wikidata/): the full recipe (relation stage: supervised contrastive loss over
# the classifier's representation + relation-text alignment + entity blanking, early stopping
# on the 39 development relations), each part alone, and the paper's two stages on the same
# corpus; then FewRel 1.0 val in four settings, without and with relation text (pid2name),
# same episodes for every row: reports/relation-ablation.{md,json,svg}.
# About 6.5 hours of training and 2 of evaluation on 2 cores (docs/benchmarks.md).
# Every run resumes if interrupted (run the script again). Runs in $TKRE_CACHE/relation-runs/.
#   bash scripts/experiments/pretrain-relations.sh            (extra flags for every run: PRETRAIN_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
shared=../shared/data/fewrel
runs="${TKRE_RELATION_RUNS:-$TKRE_CACHE/relation-runs}"
episodes="${EPISODES:-1000}"
build_tkre
base="$TKRE_CACHE/models/all-MiniLM-L6-v2"
corpus=data/corpus/wikidata
# The committed train.jsonl/dev.jsonl, as the default model (scripts/experiments/default-model.sh,
# whose run is `full` here) was trained on; data/corpus/wikidata/build.py rebuilds them.

relation=(--stage relation --corpus "$corpus/train.jsonl" --dev "$corpus/dev.jsonl"
  --relation-text "$shared/pid2name.json" --batch-size 32 --per-relation 4 --learning-rate 2e-5
  --epochs 10 --max-steps 300 --eval-every 25 --patience 4 --seed 42)
# Without MSLM unless a run says otherwise (clap takes each flag once).
no_mslm=(--mslm-weight 0)
pretrain() {  # NAME ARGS...
  local name=$1; shift
  if [ ! -f "$runs/$name/model.safetensors" ]; then
    "$tkre" pretrain --out "$runs/$name" --resume ${PRETRAIN_FLAGS:-} "$@"
  fi
}
pretrain full "${relation[@]}" "${no_mslm[@]}"
pretrain contrastive "${relation[@]}" "${no_mslm[@]}" --text-weight 0 --blank-probability 0
pretrain contrastive-blank "${relation[@]}" "${no_mslm[@]}" --text-weight 0
pretrain text "${relation[@]}" "${no_mslm[@]}" --contrastive-weight 0
pretrain full-mslm "${relation[@]}" --mslm-weight 0.2 --freeze-encoder-steps 50
# The paper's two stages on the same corpus (MSLM, then SCL with MSLM).
pretrain mslm --stage mslm --corpus "$corpus/train.jsonl" --epochs 5
pretrain two-stage --stage scl --model "$runs/mslm" --corpus "$corpus/train.jsonl" --epochs 5

rows=(--row "base=$base")
for name in full contrastive contrastive-blank text full-mslm mslm two-stage; do
  rows+=(--row "$name=$runs/$name")
done
"$tkre" eval --data "$shared/val_wiki.json" --report reports/relation-ablation "${rows[@]}" \
  --relation-descriptions "$shared/pid2name.json" --episodes "$episodes" --seed 1 \
  --settings 5-1,5-5,10-1,10-5
