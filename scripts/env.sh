# Sourced by the scripts: shared cache locations outside the clone, so repeated runs reuse
# builds and downloads.
export TKRE_CACHE="${TKRE_CACHE:-$HOME/.cache/tkre}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TKRE_CACHE/target}"
export TKRE_WASM_TARGET_DIR="${TKRE_WASM_TARGET_DIR:-$TKRE_CACHE/target-wasm}"

# The one way scripts build and find the `tkre` binary: a dev build (its dependencies, burn
# among them, are optimised in the dev profile too); sets $tkre to its path. Arguments go to
# cargo (e.g. --features wgpu). TKRE_BIN names a binary to use instead (a long run keeps its
# own copy, so rebuilding the tree meanwhile does not change the program under it).
build_tkre() {
  if [ -n "${TKRE_BIN:-}" ]; then
    tkre=$TKRE_BIN
    return
  fi
  cargo build --quiet -p tkre-trainer "$@"
  tkre="$CARGO_TARGET_DIR/debug/tkre"
}
