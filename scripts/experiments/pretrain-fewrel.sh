#!/usr/bin/env bash
# The pre-training experiment of docs/training.md: all-MiniLM-L6-v2 pre-trained on the paper's
# released synthetic corpus (EDKG explanations + SCDG samples, ../shared/data/tkre-synthetic)
# plus FewRel 2.0's unlabelled PubMed sentences, then FewRel 1.0 val accuracy of
#   base, +MSLM (stage 1), +SCL (stage 2 from base), two-stage (stage 2 from stage 1).
# Each run resumes if interrupted (run the script again). Results: reports/pretrain-*.jsonl,
# runs in $TKRE_CACHE/pretrain-runs/.
#   bash scripts/experiments/pretrain-fewrel.sh            (extra flags for every `tkre pretrain`: PRETRAIN_FLAGS)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
source scripts/experiments/corpus.sh
runs="${TKRE_PRETRAIN_RUNS:-$TKRE_CACHE/pretrain-runs}"
episodes="${EPISODES:-1000}"
build_tkre
base="$TKRE_CACHE/models/all-MiniLM-L6-v2"

pretrain() {  # NAME ARGS...
  local name=$1; shift
  if [ ! -f "$runs/$name/model.safetensors" ]; then
    "$tkre" pretrain "${corpus[@]}" --out "$runs/$name" --resume ${PRETRAIN_FLAGS:-} "$@"
  fi
}
pretrain mslm --stage mslm
pretrain two-stage --stage scl --model "$runs/mslm"
pretrain scl --stage scl

mkdir -p reports
for entry in "base:$base" "mslm:$runs/mslm" "scl:$runs/scl" "two-stage:$runs/two-stage"; do
  name=${entry%%:*}; model=${entry#*:}
  out="reports/pretrain-$name.jsonl"
  [ -s "$out" ] && [ "${REEVAL:-0}" = 0 ] && continue
  : > "$out.tmp"
  for nk in "5 1" "5 5" "10 1" "10 5"; do
    set -- $nk
    "$tkre" eval --model "$model" --data "$data/fewrel/val_wiki.json" --n "$1" --k "$2" \
      --episodes "$episodes" --seed 1 | tail -n 1 | tee -a "$out.tmp"
  done
  mv "$out.tmp" "$out"
done
python3 - <<'PY'
import json
settings = [(5, 1), (5, 5), (10, 1), (10, 5)]
print("| model | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings) + " |")
print("|---|" + "---|" * len(settings))
for name in ["base", "mslm", "scl", "two-stage"]:
    rows = [json.loads(l) for l in open(f"reports/pretrain-{name}.jsonl") if l.strip()]
    cells = []
    for n, k in settings:
        r = next((r for r in rows if r["n"] == n and r["k"] == k), None)
        cells.append(f"{100*r['accuracy']:.2f} ± {100*r['ci95']:.2f}" if r else "-")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
