#!/usr/bin/env bash
# Encoder benchmark (not a test): sentences/s at batch 1 and 32 on FewRel sentences for this
# project's burn encoder (ndarray and flex CPU backends) and candle-transformers' BERT, same weights,
# same token ids, same machine and run. Prints a table and writes reports/bench-encoder.json.
#   bash bench/encoder.sh [FEWREL_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup/fetch-base-model.sh >/dev/null
data="${1:-../shared/data/fewrel/val_wiki.json}"
model="$TKRE_CACHE/models/all-MiniLM-L6-v2"
export CARGO_TARGET_DIR="$TKRE_CACHE/target-bench"
cargo build --release --quiet --manifest-path bench/encoder/Cargo.toml
bin="$CARGO_TARGET_DIR/release/tkre-bench-encoder"
mkdir -p reports
results=$(for impl in burn burn-flex burn-flex-embed candle; do "$bin" --model "$model" --implementation "$impl" --data "$data"; done)
python3 - "$results" <<'PY'
import json, sys, platform, os, datetime
rows = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
report = {"date": datetime.date.today().isoformat(), "command": "bash bench/encoder.sh", "machine": f"{cpu}, {os.cpu_count()} cores", "rows": rows}
json.dump(report, open("reports/bench-encoder.json", "w"), indent=2)
print(f"machine: {report['machine']}")
print(f"{'implementation':<15}{'batch':>6}{'sentences/s':>13}{'mean tokens':>13}{'peak RSS MiB':>14}")
for r in rows:
    print(f"{r['implementation']:<15}{r['batch_size']:>6}{r['sentences_per_second']:>13.1f}{r['mean_tokens']:>13.1f}{r['peak_rss_mib']:>14.0f}")
PY
