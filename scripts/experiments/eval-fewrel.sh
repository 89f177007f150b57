#!/usr/bin/env bash
# FewRel 1.0 val accuracy of a model for the four standard settings (1000 episodes, seed 1)
# and several relation representations. Writes reports/fewrel-<name>.json and prints a
# markdown table; the reference numbers of tests/reference/fewrel_eval.py
# (reports/reference-fewrel.json) are shown beside ours when present.
#   bash scripts/experiments/eval-fewrel.sh [MODEL_DIR] [NAME] [REPRESENTATIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
model="${1:-$TKRE_CACHE/models/all-MiniLM-L6-v2}"
name="${2:-base}"
representations="${3:-entity-mean-sentence markers-sentence markers}"
data="${TKRE_FEWREL_VAL:-../shared/data/fewrel/val_wiki.json}"
build_tkre
mkdir -p reports
out="reports/fewrel-$name.jsonl"
: > "$out"
for representation in $representations; do
  for nk in "5 1" "5 5" "10 1" "10 5"; do
    set -- $nk
    "$tkre" eval --model "$model" --data "$data" --n "$1" --k "$2" --episodes 1000 --seed 1 \
      --representation "$representation" | tail -n 1 | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = json.load(open("reports/reference-fewrel.json")) if os.path.exists("reports/reference-fewrel.json") else {}
settings = [(5, 1), (5, 5), (10, 1), (10, 5)]
print("| representation | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings) + " |")
print("|---|" + "---|" * len(settings))
for rep in dict.fromkeys(r["representation"] for r in rows):
    cells = []
    for n, k in settings:
        r = next((r for r in rows if r["representation"] == rep and r["n"] == n and r["k"] == k), None)
        cell = f"{100*r['accuracy']:.2f} ± {100*r['ci95']:.2f}" if r else "-"
        ref_rep = ref.get(rep.replace("-", "_"), {}).get(f"{n}-{k}")
        if ref_rep:
            cell += f" (ref {100*ref_rep['accuracy']:.2f})"
        cells.append(cell)
    print(f"| {rep} | " + " | ".join(cells) + " |")
PY
