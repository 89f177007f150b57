#!/usr/bin/env bash
# Distillation with the relation-trained teacher (docs/training.md, "Distillation"): the default
# model's checkpoint (scripts/experiments/default-model.sh's run) teaches a 3-layer student made of its
# own layers 1, 3, 5, on the Wikidata corpus's training sentences plus FewRel 2.0's unlabelled
# PubMed sentences (another domain), stopping early on the corpus's development relations.
# Beside it, the same 3 layers untaught (the equal-size baseline). Then FewRel 1.0 val, four
# settings, without and with relation text, int8 exports, same episodes for every row:
# reports/distill-default.{md,json,svg}. Every step resumes if interrupted (run it again).
# About an hour of distillation and 20 minutes of evaluation on 2 cores.
#   bash scripts/experiments/distill-default.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
shared=../shared/data/fewrel
corpus=data/corpus/wikidata
teacher="$TKRE_CACHE/relation-runs/full"
runs="${TKRE_DISTILL_RUNS:-$TKRE_CACHE/distill-relation-runs}"
exports="$TKRE_CACHE/web-models"
build_tkre
bash scripts/setup/fetch-base-model.sh >/dev/null
base="$TKRE_CACHE/models/all-MiniLM-L6-v2"
if [ ! -f "$teacher/model.safetensors" ]; then
  echo "no teacher in $teacher: run scripts/experiments/default-model.sh first" >&2
  exit 2
fi

distill=(--teacher "$teacher" --model "$teacher" --student-layers 1,3,5
  --corpus "$corpus/train.jsonl" --corpus "$shared/pubmed_unsupervised.json")
if [ ! -f "$runs/truncated/model.safetensors" ]; then
  "$tkre" distill "${distill[@]}" --max-steps 0 --out "$runs/truncated" --quiet
fi
if [ ! -f "$runs/student/model.safetensors" ]; then
  "$tkre" distill "${distill[@]}" --dev "$corpus/dev.jsonl" --eval-every 50 --patience 4 \
    --learning-rate 1e-4 --epochs 2 --seed 42 --out "$runs/student" --resume
fi

int8() {  # SOURCE NAME -> an int8 export's directory
  local out="$exports/$2-int8"
  if [ ! -f "$out/manifest.json" ]; then
    "$tkre" export --model "$1" --out "$out" --precision int8 >/dev/null
  fi
  echo "$out"
}
rows=(--row "base, 6 layers (int8)=$(int8 "$base" base)"
  --row "default, 6 layers (int8)=$(int8 "$teacher" default)"
  --row "3 layers of default, not distilled (int8)=$(int8 "$runs/truncated" default-3-layers)"
  --row "student: 3 layers taught by default (int8)=$(int8 "$runs/student" default-student)")
"$tkre" eval --data "$shared/val_wiki.json" --report reports/distill-default \
  --relation-descriptions "$shared/pid2name.json" --episodes 1000 --seed 1 \
  --settings 5-1,5-5,10-1,10-5 "${rows[@]}"
# Another schema and style, as a proxy for the held-out domain: the TKRE paper's released
# synthetic sentences for TACRED's person/organisation relations (news-like; benchmark use
# only), relations with enough sentences for each setting.
"$tkre" eval --data ../shared/data/tkre-synthetic/llm_da_8.jsonl --report reports/distill-default-tacred \
  --episodes 1000 --seed 1 --settings 5-1,5-5 "${rows[@]}"
