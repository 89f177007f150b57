#!/usr/bin/env bash
# Synthesises the Wikidata pre-training corpus in data/corpus/wikidata/ with the local LLM
# (Qwen2.5-Coder-1.5B-Instruct, scripts/setup/fetch-llm.sh) through `tkre synthesize`. Goes through
# relations.txt in order, 20 relations at a time: their entity types (asked once), the typed
# schema, samples (a second round, hotter, for relations short of 8 valid), then paraphrases
# of the first samples. Every step resumes, so run it again
# after any interruption (nothing is lost or sent twice); it can run in pieces over days.
#   bash scripts/experiments/synthesize-corpus.sh [RELATIONS]     RELATIONS: how many of relations.txt (default all)
# Environment: SAMPLES_PER_RELATION (10), PARAPHRASED_PER_RELATION (2), PARAPHRASES (3),
# CHUNK (20), LLM_PORT (18791), PARALLEL (4: requests decoded together by llama.cpp's
# llama-server, scripts/setup/llama-server.sh; the answers do not depend on it). A server
# already listening on LLM_PORT is used as it is. LLM_THREADS (all cores): give it one core
# less while other heavy work shares the machine, since llama.cpp's threads wait on each
# other and slow down many times over when a core is taken from them. About half a minute per relation on 2 cores.
# Samples and paraphrases are asked in free text (the paper's line format, one per line):
# llama-cpp-python's grammar-constrained decoding cost about 155 ms per token on top of the
# model's 75, three times slower; the answers are parsed and checked the same either way.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

dir=data/corpus/wikidata
pid2name=../shared/data/fewrel/pid2name.json
count=${1:-$(wc -l < "$dir/relations.txt")}
chunk=${CHUNK:-20}
port=${LLM_PORT:-18791}
[ -f "$pid2name" ] || { echo "synthesize-corpus.sh: $pid2name is missing (FewRel's pid2name.json)" >&2; exit 1; }

build_tkre
gguf=$(bash scripts/setup/fetch-llm.sh qwen2.5-coder-1.5b)
parallel=${PARALLEL:-4}
endpoint="http://127.0.0.1:$port/v1"
if ! curl -sf --max-time 10 "$endpoint/models" >/dev/null; then
  llama_server=$(bash scripts/setup/llama-server.sh)
  # 4096 tokens of context per slot.
  "$llama_server" --model "$gguf" --host 127.0.0.1 --port "$port" --ctx-size $((4096 * parallel)) \
    --parallel "$parallel" --threads "${LLM_THREADS:-$(nproc)}" --alias qwen2.5-coder-1.5b > "$TKRE_CACHE/llm-server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 120); do curl -sf --max-time 10 "$endpoint/models" >/dev/null && break; sleep 1; done
fi
model=$(curl -sf --max-time 10 "$endpoint/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')

untyped="$TKRE_CACHE/corpus-schema-untyped.json"
"$tkre" synthesize schema --from-pid2name "$pid2name" --out "$untyped" 2>/dev/null
server_args=(--endpoint "$endpoint" --llm "$model" --concurrency "$parallel" --timeout 900 --resume)
mapfile -t relations < <(head -n "$count" "$dir/relations.txt")
for ((i = 0; i < ${#relations[@]}; i += chunk)); do
  list=$(IFS=,; echo "${relations[*]:i:chunk}")
  echo "== relations $((i + 1))-$((i + chunk < ${#relations[@]} ? i + chunk : ${#relations[@]})) of ${#relations[@]}: $(date -u +%H:%M)" >&2
  "$tkre" synthesize types "${server_args[@]}" --schema "$untyped" --only-relations "$list" \
    --temperature 0 --max-tokens 80 --quiet --out "$dir/types.jsonl" || true
  "$tkre" synthesize schema --from-pid2name "$pid2name" --types "$dir/types.jsonl" --out "$dir/schema.json" 2>/dev/null
  "$tkre" synthesize samples "${server_args[@]}" --schema "$dir/schema.json" --only-relations "$list" \
    --template data/synthesis/wikidata-samples.txt --demonstrations 0 --temperature 0.7 \
    --n "${SAMPLES_PER_RELATION:-10}" --structured off --out "$dir/samples.jsonl" || true
  # A second round for the relations of this chunk still short of 8 valid samples.
  short=$(python3 - "$dir/schema.json" "$dir/samples.jsonl.done.jsonl" "$list" <<'PY'
import json, sys
name_of = {r.get("id"): r["name"] for r in json.load(open(sys.argv[1]))["relations"]}
valid = {}
for line in open(sys.argv[2]):
    entry = json.loads(line)
    valid[entry["relation"]] = valid.get(entry["relation"], 0) + entry["valid"]
print(",".join(p for p in sys.argv[3].split(",") if p and valid.get(name_of.get(p), 0) < 8))
PY
)
  if [ -n "$short" ]; then
    "$tkre" synthesize samples "${server_args[@]}" --schema "$dir/schema.json" --only-relations "$short" \
      --template data/synthesis/wikidata-samples.txt --demonstrations 0 --temperature 0.9 --rounds 2 \
      --n "${SAMPLES_PER_RELATION:-10}" --structured off --out "$dir/samples.jsonl" || true
  fi
  "$tkre" synthesize paraphrases "${server_args[@]}" --schema "$dir/schema.json" --only-relations "$list" \
    --from "$dir/samples.jsonl" --per-relation "${PARAPHRASED_PER_RELATION:-2}" --n "${PARAPHRASES:-3}" \
    --temperature 0.7 --structured off --out "$dir/paraphrases.jsonl" || true
done
echo "corpus: $(wc -l < "$dir/samples.jsonl") samples, $(wc -l < "$dir/paraphrases.jsonl") paraphrases in $dir" >&2
