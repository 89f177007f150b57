#!/usr/bin/env bash
# Builds the browser package's wasm: compiles the library (src/) for wasm32-unknown-unknown
# (rustup's target, or Debian's rustc-web with the standard library built from source); then wasm-bindgen
# (--target web) into pkg/wasm/ and wasm-opt. Prints and records the sizes.
#   bash scripts/dev/build-wasm.sh [--check | --profiling | --compare]
#     --check: stop after cargo; --profiling: keep the function names (name section) and skip
#     wasm-opt, for bench/profile.js (a bigger module; rebuild without the flag afterwards);
#     --compare: the comparison build (burn's ndarray and WebGPU backends besides the engines)
#     into pkg/wasm-compare/, for bench/browser.js's burn rows (bench/compare-build.html).
# The default build has no burn (--no-default-features --features webgpu): users download the
# CPU and WebGPU engines only.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh

features=(--no-default-features --features webgpu)
out=pkg/wasm
size_report=reports/wasm-size.json
if [ "${1:-}" = "--compare" ]; then
  features=(--no-default-features --features webgpu,ndarray,burn-webgpu)
  out=pkg/wasm-compare
  size_report=reports/wasm-size-compare.json
fi

# The toolchain: rustup's, when it has the wasm32-unknown-unknown target (`rustup target add
# wasm32-unknown-unknown`), with its prebuilt standard library; else Debian's rustc-web, which
# ships none, so the standard library is built from source (rust-web-src, -Zbuild-std).
# +simd128: 128-bit wasm SIMD (every browser with WebGPU has it) for the CPU backends' matmuls.
# --remap-path-prefix, given to this crate only (`cargo rustc ... -- ARGS`): the clone's path
# would otherwise end up in panic messages, making every clone's wasm differ and miss the
# wasm-opt cache below. In RUSTFLAGS it would also change every dependency's fingerprint per
# clone and rebuild them all.
export RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128'
cargo_args=(rustc --profile wasm-release -p tkre --lib --target wasm32-unknown-unknown "${features[@]}")
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "building with rustup's $(rustc --version) and its wasm32-unknown-unknown target" >&2
  CARGO_TARGET_DIR="$TKRE_WASM_TARGET_DIR/rustup" \
    cargo "${cargo_args[@]}" -- "--remap-path-prefix=$PWD=/tkre"
  wasm="$TKRE_WASM_TARGET_DIR/rustup/wasm32-unknown-unknown/wasm-release/tkre.wasm"
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  echo "building with Debian's $(/usr/bin/rustc --version) (rustc-web), the standard library from source" >&2
  PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TKRE_WASM_TARGET_DIR" \
    /usr/bin/cargo "${cargo_args[@]}" -Zbuild-std=std,panic_abort -- "--remap-path-prefix=$PWD=/tkre"
  wasm="$TKRE_WASM_TARGET_DIR/wasm32-unknown-unknown/wasm-release/tkre.wasm"
else
  echo "build-wasm.sh: no wasm32 toolchain: run \`rustup target add wasm32-unknown-unknown\`, or on Debian" >&2
  echo "  \`apt-get install rustc-web cargo-web rust-web-src lld\` (scripts/setup/install.sh does)" >&2
  exit 1
fi
echo "cargo wasm build ok: $wasm" >&2
[ "${1:-}" = "--check" ] && exit 0

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
if [ "${1:-}" = "--profiling" ]; then
  "$HOME/.cargo/bin/wasm-bindgen" --keep-debug --target web --out-dir "$out.tmp" --out-name tkre "$wasm"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "$out/tkre_bg.wasm: $(stat -c %s "$out/tkre_bg.wasm") bytes, with function names (profiling build)" >&2
  exit 0
fi
"$HOME/.cargo/bin/wasm-bindgen" --target web --out-dir "$out.tmp" --out-name tkre "$wasm"
raw_before=$(stat -c %s "$out.tmp/tkre_bg.wasm")
# wasm-opt from the npm package binaryen (version 132; Debian's 108 breaks wasm-bindgen's
# reference-types tables). It takes minutes on a 50 MB module, so its output is cached by
# the input's sha256.
key=$(sha256sum "$out.tmp/tkre_bg.wasm" | cut -c1-16)
opt_cache="$TKRE_CACHE/wasm-opt/$key.wasm"
if [ ! -f "$opt_cache" ]; then
  mkdir -p "$TKRE_CACHE/wasm-opt"
  echo "wasm-opt -O3 (a few minutes)..." >&2
  "$TKRE_CACHE/tools/binaryen/node_modules/.bin/wasm-opt" -O3 "$out.tmp/tkre_bg.wasm" -o "$opt_cache.tmp"
  mv "$opt_cache.tmp" "$opt_cache"
fi
cp "$opt_cache" "$out.tmp/tkre_bg.wasm"
rm -rf "$out" && mv "$out.tmp" "$out"
raw=$(stat -c %s "$out/tkre_bg.wasm")
gz=$(gzip -9 -c "$out/tkre_bg.wasm" | wc -c)
mkdir -p reports
printf '{"wasm_bytes_before_wasm_opt": %s, "wasm_bytes": %s, "wasm_gzip_bytes": %s}\n' "$raw_before" "$raw" "$gz" > "$size_report"
echo "$out/tkre_bg.wasm: $raw bytes ($gz gzipped; $raw_before before wasm-opt)" >&2
