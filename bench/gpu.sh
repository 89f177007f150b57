#!/usr/bin/env bash
# GPU numbers (a benchmark, not a test) for a machine with a GPU and no network: the WebGPU
# engine natively (wgpu on the machine's Vulkan driver) against the CPU engines, and burn's
# training step on wgpu against the CPU. Prints a table and writes reports/bench-gpu.json.
# The product never needs this: the browser runs without a GPU.
#
# Two halves, because the GPU machine cannot build (no network, no cargo cache):
#   bash bench/gpu.sh build   here: `tkre` in release with the wgpu feature, stripped, into
#                             bench/gpu-build/tkre (gitignored; about 30 MB, under the 64 MB a
#                             carried build may take)
#   bash bench/gpu.sh run     there, in a copy of the repository with bench/gpu-build carried
#                             (the device tool: carry ["bench/gpu-build"], command
#                             `bash bench/gpu.sh run`). Everything else it reads is in git:
#                             models/default (the packed default model, widened as it loads)
#                             and the synthetic corpus data/corpus/wikidata/.
# Settings (environment): SENTENCES=2000 (sentences embedded per engine), STEPS=12 (training
# steps; the first 2 warm up and are not counted), ENGINES="webgpu cpu burn",
# DEVICES="wgpu cpu", OUT=reports/bench-gpu.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=bench/gpu-build
tkre="$build_dir/tkre"

case "${1:-}" in
  build)
    source scripts/env.sh
    cargo build --release --quiet -p tkre-trainer --features wgpu
    mkdir -p "$build_dir"
    strip -o "$tkre" "$CARGO_TARGET_DIR/release/tkre"
    echo "$tkre: $(stat -c %s "$tkre") bytes; carry $build_dir and run \`bash bench/gpu.sh run\`" >&2
    exit 0
    ;;
  run) ;;
  *)
    echo "usage: bash bench/gpu.sh build|run" >&2
    exit 2
    ;;
esac

[ -x "$tkre" ] || { echo "bench/gpu.sh: $tkre is missing: run \`bash bench/gpu.sh build\` first (and carry $build_dir)" >&2; exit 1; }
sentences=${SENTENCES:-2000}
steps=${STEPS:-12}
read -r -a engines <<< "${ENGINES:-webgpu cpu burn}"
read -r -a devices <<< "${DEVICES:-wgpu cpu}"
out=${OUT:-reports/bench-gpu.json}
model=models/default
corpus=data/corpus/wikidata/samples.jsonl
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

# The sentences: the corpus's, repeated up to SENTENCES.
python3 - "$corpus" "$sentences" > "$work/sentences.txt" <<'PY'
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
print("\n".join((texts * (n // len(texts) + 1))[:n]))
PY
head -n 1 "$work/sentences.txt" > "$work/one.txt"

# Embedding throughput per engine: the time for SENTENCES sentences minus the time for one (the
# load and the device set-up), so the rate counts encoding only. A failing engine (no Vulkan
# driver) is a row with its error, not the end of the run.
seconds() {
  local start
  start=$(date +%s.%N)
  if "$@" > /dev/null; then python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$(date +%s.%N)"; else echo error; fi
}
rows=()
for engine in "${engines[@]}"; do
  one=$(seconds "$tkre" embed --model "$model" --engine "$engine" < "$work/one.txt" 2> "$work/$engine.err" || true)
  all=$(seconds "$tkre" embed --model "$model" --engine "$engine" < "$work/sentences.txt" 2>> "$work/$engine.err" || true)
  rows+=("$(python3 - "$engine" "$one" "$all" "$sentences" "$work/$engine.err" <<'PY'
import json, sys
engine, one, all_, n, err = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
if "error" in (one, all_):
    print(json.dumps({"kind": "embed", "engine": engine, "error": open(err).read().strip()[-400:]}))
else:
    encode = max(float(all_) - float(one), 1e-9)
    print(json.dumps({"kind": "embed", "engine": engine, "sentences": n, "load_s": float(one),
                      "encode_s": encode, "sentences_per_s": (n - 1) / encode}))
PY
)")
done

# Training: stage 2 (MSLM + SCL) from the default model on the corpus, batch 16, max length 128.
for device in "${devices[@]}"; do
  run="$work/train-$device"
  if "$tkre" pretrain --stage scl --quiet --model "$model" --corpus "$corpus" --batch-size 16 \
      --max-length 128 --max-steps "$steps" --checkpoint-every 100000 --device "$device" \
      --out "$run" 2> "$work/train-$device.err"; then
    rows+=("$(python3 - "$run/metrics.jsonl" "$device" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
timed = rows[2:]  # steps 1-2 warm up (allocations, kernel compilation)
seconds = timed[-1]["elapsed_s"] - rows[1]["elapsed_s"]
print(json.dumps({"kind": "train", "device": sys.argv[2], "steps": len(timed), "seconds_per_step": seconds / len(timed),
                  "tokens_per_s": sum(r["tokens"] for r in timed) / seconds, "last_loss": rows[-1]["loss"]}))
PY
)")
  else
    rows+=("$(python3 -c 'import json,sys; print(json.dumps({"kind": "train", "device": sys.argv[1], "error": open(sys.argv[2]).read().strip()[-400:]}))' "$device" "$work/train-$device.err")")
  fi
done

python3 - "$out" "${rows[@]}" <<'PY'
import datetime, json, os, subprocess, sys
out, rows = sys.argv[1], [json.loads(r) for r in sys.argv[2:]]
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip() if any(
    os.access(os.path.join(p, "nvidia-smi"), os.X_OK) for p in os.environ.get("PATH", "").split(":")) else "unknown"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
report = {"date": datetime.date.today().isoformat(), "command": "bash bench/gpu.sh run", "gpu": gpu,
          "cpu": f"{cpu}, {os.cpu_count()} cores", "model": "models/default (packed int8, widened as it loads)", "rows": rows}
json.dump(report, open(out, "w"), indent=2)
print(f"GPU: {gpu}\nCPU: {report['cpu']}\n")
print("| what | engine / device | rate | detail |\n|---|---|---|---|")
for r in rows:
    who = r.get("engine") or r.get("device")
    if "error" in r:
        print(f"| {r['kind']} | {who} | error | {r['error'].splitlines()[-1] if r['error'] else ''} |")
    elif r["kind"] == "embed":
        print(f"| embed | {who} | {r['sentences_per_s']:.1f} sentences/s | load {r['load_s']:.2f} s |")
    else:
        print(f"| train (stage 2) | {who} | {r['tokens_per_s']:.0f} tokens/s | {r['seconds_per_step']:.3f} s/step |")
print(f"\nwrote {out}")
PY
