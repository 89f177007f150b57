#!/usr/bin/env bash
# Synthesis LLMs on this machine: generation speed and yield of validated samples for each
# model of scripts/setup/fetch-llm.sh, through the same path as a corpus run (llama-cpp-python's
# OpenAI-compatible server, `tkre synthesize samples` with its checks). Prompts: the paper's
# SCDG template for RELATIONS (TACRED schema; the paper's released samples as demonstrations,
# benchmark use only), temperature 0.7, one request at a time, all cores to the server.
# Prints a table and writes reports/bench-llm.json. Run it on an otherwise idle machine.
#   bash bench/llm.sh        (MODELS="qwen2.5-coder-0.5b" to run one; N=samples per prompt)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
build_tkre
python=$(bash scripts/setup/llm.sh | head -1)
seeds=../shared/data/tkre-synthetic/llm_da_8.jsonl
relations=${RELATIONS:-"per:city_of_birth,org:founded_by,per:employee_of,per:spouse,org:country_of_headquarters"}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$tkre" synthesize schema --from-tacred "$seeds" --out "$work/schema.json" >/dev/null
rows=()
for model in ${MODELS:-qwen2.5-coder-0.5b qwen2.5-coder-1.5b}; do
  gguf=$(bash scripts/setup/fetch-llm.sh "$model")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" --n_ctx 4096 \
    --n_threads "$(nproc)" --model_alias "$model" >"$work/$model.server.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.5
  done
  started=$(date +%s.%N)
  "$tkre" synthesize samples --endpoint "http://127.0.0.1:$port/v1" --llm "$model" \
    --schema "$work/schema.json" --seeds "$seeds" --only-relations "$relations" \
    --n "${N:-5}" --rounds 1 --demonstrations 3 --temperature 0.7 --concurrency 1 \
    --timeout 900 --out "$work/$model.jsonl" >"$work/$model.log" 2>&1
  wall=$(python3 -c "import time; print(round(time.time() - $started, 1))")
  kill "$server"; wait "$server" 2>/dev/null || true
  rows+=("$(python3 - "$work/$model.jsonl.report.json" "$model" "$gguf" "$wall" <<'PY'
import json, os, sys
report, model, gguf, wall = sys.argv[1:]
r = json.load(open(report))
asked = sum(y["asked"] for y in r["relations"].values())
valid = sum(y["valid"] for y in r["relations"].values())
print(json.dumps({
    "model": model, "gguf_bytes": os.path.getsize(gguf),
    "completion_tokens": r["completion_tokens"], "elapsed_s": r["elapsed_s"], "wall_s": float(wall),
    "tokens_per_s": r["completion_tokens"] / r["elapsed_s"] if r["elapsed_s"] else None,
    "asked": asked, "valid": valid, "yield": valid / asked if asked else None,
    "valid_per_minute": 60 * valid / r["elapsed_s"] if r["elapsed_s"] else None,
}))
PY
)")
done
mkdir -p reports
python3 - "$relations" "$(nproc)" "${rows[@]}" <<'PY'
import json, sys, platform
relations, cores, *rows = sys.argv[1:]
rows = [json.loads(r) for r in rows]
out = {"relations": relations.split(","), "cores": int(cores), "temperature": 0.7,
       "command": "bash bench/llm.sh", "machine": platform.processor() or platform.machine(), "rows": rows}
json.dump(out, open("reports/bench-llm.json", "w"), indent=1)
print("| model | completion tokens/s | asked | valid | yield | valid samples/min |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['tokens_per_s']:.2f} | {r['asked']} | {r['valid']} | {100 * r['yield']:.0f}% | {r['valid_per_minute']:.2f} |")
PY
