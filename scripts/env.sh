# Sourced by the scripts: shared cache locations outside the clone, so repeated runs reuse
# builds and downloads.
export TKRE_CACHE="${TKRE_CACHE:-$HOME/.cache/tkre}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TKRE_CACHE/target}"
export TKRE_WASM_TARGET_DIR="${TKRE_WASM_TARGET_DIR:-$TKRE_CACHE/target-wasm}"
