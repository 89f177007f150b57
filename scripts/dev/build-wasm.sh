#!/usr/bin/env bash
# Builds the browser package's wasm: compiles the library (src/) for wasm32-unknown-unknown
# (rustup's target, or Debian's rustc-web with the standard library built from source); then wasm-bindgen
# (--target web) into pkg/wasm/ and wasm-opt; then the same again with wasm threads into
# pkg/wasm-threads/ (loaded by cross-origin isolated pages). Prints and records the sizes.
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
variants=(single threads)
if [ "${1:-}" = "--compare" ]; then
  features=(--no-default-features --features webgpu,ndarray,burn-webgpu)
  variants=(compare)
fi
case "${1:-}" in --check | --profiling) variants=(single) ;; esac

# The toolchain: rustup's, when it has the wasm32-unknown-unknown target (`rustup target add
# wasm32-unknown-unknown`), with its prebuilt standard library; else Debian's rustc-web, which
# ships none, so the standard library is built from source (rust-web-src, -Zbuild-std).
# +simd128: 128-bit wasm SIMD (every browser with WebGPU has it) for the CPU backends' matmuls.
# The threaded build (pkg/wasm-threads/: +atomics,+bulk-memory, shared memory imported from
# the page) needs the standard library rebuilt with atomics, so -Zbuild-std on either
# toolchain (RUSTC_BOOTSTRAP=1 allows it on a stable rustc; rustup's needs its rust-src
# component). Without it only the single-thread build is made, the package runs on one thread,
# and pkg/wasm-threads.missing says why (the tests of threads and packing read it).
# --remap-path-prefix, given to this crate only (`cargo rustc ... -- ARGS`): the clone's path
# would otherwise end up in panic messages, making every clone's wasm differ and miss the
# wasm-opt cache below. In RUSTFLAGS it would also change every dependency's fingerprint per
# clone and rebuild them all. The linker flags of shared memory likewise go to this crate only.
base_rustflags='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128'
threads_rustflags="$base_rustflags,+atomics,+bulk-memory"
threads_link=(-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align
  -C link-arg=--export=__tls_base)
cargo_args=(rustc --profile wasm-release -p tkre --lib --target wasm32-unknown-unknown "${features[@]}")
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  toolchain=rustup
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  toolchain=debian
else
  echo "build-wasm.sh: no wasm32 toolchain: run \`rustup target add wasm32-unknown-unknown\`, or on Debian" >&2
  echo "  \`apt-get install rustc-web cargo-web rust-web-src lld\` (scripts/setup/install.sh does)" >&2
  exit 1
fi

# cargo_build VARIANT: compiles one build; sets $wasm to the module, or returns 1 when this
# toolchain cannot make it (and says why in $missing_threads). A failed compile exits: the
# caller's `if` would otherwise switch off `set -e` inside the function.
cargo_build() {
  local variant=$1 target_dir rustflags=$base_rustflags extra=() std=()
  if [ "$variant" = threads ]; then
    rustflags=$threads_rustflags
    extra=("${threads_link[@]}")
    std=(-Zbuild-std=std,panic_abort)
  fi
  if [ "$toolchain" = rustup ]; then
    target_dir="$TKRE_WASM_TARGET_DIR/rustup"
    if [ "$variant" = threads ]; then
      if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
        missing_threads="the threaded build needs the standard library's source: \`rustup component add rust-src\`, then build again"
        return 1
      fi
      target_dir="$TKRE_WASM_TARGET_DIR/rustup-threads"
      echo "building the threaded wasm with rustup's $(rustc --version), the standard library from source" >&2
      RUSTFLAGS=$rustflags RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" \
        cargo "${cargo_args[@]}" "${std[@]}" -- "--remap-path-prefix=$PWD=/tkre" "${extra[@]}" || exit 1
    else
      echo "building with rustup's $(rustc --version) and its wasm32-unknown-unknown target" >&2
      RUSTFLAGS=$rustflags CARGO_TARGET_DIR="$target_dir" \
        cargo "${cargo_args[@]}" -- "--remap-path-prefix=$PWD=/tkre" || exit 1
    fi
  else
    target_dir="$TKRE_WASM_TARGET_DIR"
    [ "$variant" = threads ] && target_dir="$TKRE_WASM_TARGET_DIR/threads"
    echo "building the $variant wasm with Debian's $(/usr/bin/rustc --version) (rustc-web), the standard library from source" >&2
    RUSTFLAGS=$rustflags PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target_dir" \
      /usr/bin/cargo "${cargo_args[@]}" -Zbuild-std=std,panic_abort -- "--remap-path-prefix=$PWD=/tkre" "${extra[@]}" || exit 1
  fi
  wasm="$target_dir/wasm32-unknown-unknown/wasm-release/tkre.wasm"
  echo "cargo wasm build ok: $wasm" >&2
}

# bind VARIANT: wasm-bindgen and wasm-opt into the variant's folder; records its sizes.
bind() {
  local variant=$1 out=pkg/wasm size_report=reports/wasm-size.json
  case $variant in
    threads) out=pkg/wasm-threads size_report=reports/wasm-size-threads.json ;;
    compare) out=pkg/wasm-compare size_report=reports/wasm-size-compare.json ;;
  esac
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  if [ "${1:-}" = single ] && [ "$mode" = "--profiling" ]; then
    "$HOME/.cargo/bin/wasm-bindgen" --keep-debug --target web --out-dir "$out.tmp" --out-name tkre "$wasm"
    rm -rf "$out" && mv "$out.tmp" "$out"
    echo "$out/tkre_bg.wasm: $(stat -c %s "$out/tkre_bg.wasm") bytes, with function names (profiling build)" >&2
    return
  fi
  "$HOME/.cargo/bin/wasm-bindgen" --target web --out-dir "$out.tmp" --out-name tkre "$wasm"
  local raw_before key opt_cache raw gz
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
}

mode=${1:-}
missing_threads=''
for variant in "${variants[@]}"; do
  if ! cargo_build "$variant"; then
    # Only the threaded build is optional; a stale one would not match the new single build.
    echo "build-wasm.sh: no threaded build: $missing_threads" >&2
    rm -rf pkg/wasm-threads
    printf '%s\n' "$missing_threads" > pkg/wasm-threads.missing
    continue
  fi
  [ "$mode" = "--check" ] && exit 0
  bind "$variant"
  if [ "$variant" = threads ]; then rm -f pkg/wasm-threads.missing; fi
done
