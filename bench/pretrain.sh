#!/usr/bin/env bash
# Training throughput per backend: `tkre pretrain` (stage 2: MSLM + SCL, the heavier one) on
# all-MiniLM-L6-v2 with the paper's released synthetic corpus, batch 16, max length 128,
# STEPS steps (default 12; the first 2 are warm-up and not counted). Prints a table and
# writes reports/bench-pretrain.json: tokens/s (real tokens, padding excluded), seconds per
# step and peak resident memory.
#   bash bench/pretrain.sh [DEVICES...]      (default: cpu ndarray; wgpu/cuda need the features)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
steps="${STEPS:-12}"
if [ $# -gt 0 ]; then devices=("$@"); else devices=(cpu ndarray); fi
data=../shared/data/tkre-synthetic
build_tkre ${CARGO_FEATURES:+--features "$CARGO_FEATURES"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p reports
results=()
for device in "${devices[@]}"; do
  out="$work/$device"
  /usr/bin/time -f "%M" -o "$work/$device.rss" "$tkre" pretrain --stage scl --quiet \
    --corpus "$data/llm_corpus.json" --corpus "$data/llm_da_8.jsonl" \
    --max-steps "$steps" --checkpoint-every 100000 --device "$device" --out "$out"
  results+=("$(python3 - "$out/metrics.jsonl" "$work/$device.rss" "$device" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
# Steps 1-2 warm up (allocations, first kernels); step i's time is elapsed_i - elapsed_(i-1).
timed = rows[2:]
seconds = timed[-1]["elapsed_s"] - rows[1]["elapsed_s"]
print(json.dumps({
    "device": sys.argv[3],
    "steps": len(timed),
    "tokens_per_s": round(sum(r["tokens"] for r in timed) / seconds, 1),
    "s_per_step": round(seconds / len(timed), 2),
    "peak_rss_mib": round(int(open(sys.argv[2]).read().split()[-1]) / 1024),
}))
PY
)")
done
printf '%s\n' "${results[@]}" > "$work/rows.jsonl"
python3 - "$work/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump({"model": "all-MiniLM-L6-v2", "stage": "scl (MSLM + SCL)", "batch_size": 16, "max_length": 128,
           "rows": rows}, open("reports/bench-pretrain.json", "w"), indent=1)
print("| device | tokens/s | s/step | peak RSS MiB |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r['device']} | {r['tokens_per_s']} | {r['s_per_step']} | {r['peak_rss_mib']} |")
PY
