#!/usr/bin/env bash
# Compiles the library (src/) for wasm32-unknown-unknown with Debian's rustc-web, building
# the standard library from source (see README, "Toolchain"). `--check` stops after cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS='--cfg getrandom_backend="wasm_js"' \
CARGO_TARGET_DIR="$TKRE_WASM_TARGET_DIR" \
  /usr/bin/cargo build --release -p tkre --lib --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort
echo "wasm build ok: $TKRE_WASM_TARGET_DIR/wasm32-unknown-unknown/release/tkre.wasm" >&2
