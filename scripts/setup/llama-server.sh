#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` from the llama.cpp vendored in the llama-cpp-python
# sdist (the same 0.3.36 as scripts/setup/llm.sh, pinned by sha256), for the corpus synthesis:
# unlike llama-cpp-python's server it decodes several requests at once (`--parallel N`), and
# on 2 cores 4 sequences decode about 2.2 times as many tokens per second as one
# (llama-batched-bench, docs/training.md). Idempotent; lives in $TKRE_CACHE (about 8 minutes
# to build on 2 cores, once). cmake and ninja come from PyPI into a venv of their own.
#   bash scripts/setup/llama-server.sh      prints the path of llama-server
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

version=0.3.36
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
sdist_url=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$version.tar.gz
root="$TKRE_CACHE/tools/llama-server-$version"
server="$root/build/bin/llama-server"
if [ -x "$server" ]; then
  echo "$server"
  exit 0
fi

mkdir -p "$root" "$TKRE_CACHE/wheels"
sdist="$TKRE_CACHE/wheels/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ] || ! echo "$sdist_sha256  $sdist" | sha256sum -c --quiet - 2>/dev/null; then
  echo "downloading the llama-cpp-python $version sdist (77 MB)..." >&2
  curl -sSfL -o "$sdist.part" "$sdist_url"
  echo "$sdist_sha256  $sdist.part" | sha256sum -c --quiet - \
    || { echo "llama-server.sh: the sdist's sha256 is not $sdist_sha256" >&2; exit 1; }
  mv "$sdist.part" "$sdist"
fi
tools="$TKRE_CACHE/tools/cmake-venv"
if [ ! -x "$tools/bin/cmake" ] || [ ! -x "$tools/bin/ninja" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet cmake ninja
fi
src="$root/src"
rm -rf "$src"
mkdir -p "$src"
tar -xzf "$sdist" -C "$src" --strip-components=3 "llama_cpp_python-$version/vendor/llama.cpp"
echo "building llama-server (once; about 8 minutes on 2 cores)..." >&2
# The same portable x86-64 flags as scripts/setup/llm.sh (no AMX: see there).
PATH="$tools/bin:$PATH" cmake -S "$src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON >/dev/null
PATH="$tools/bin:$PATH" cmake --build "$root/build" -j "$(nproc)" --target llama-server llama-batched-bench >/dev/null
echo "$server"
