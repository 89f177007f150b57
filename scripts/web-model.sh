#!/usr/bin/env bash
# Makes the default browser model directory (idempotent): the base model exported by
# `tkre export` in fp16 with its manifest.json. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
dir="$TKRE_CACHE/web-models/base-fp16"
if [ ! -f "$dir/manifest.json" ]; then
  cargo build --quiet -p tkre-trainer
  "$CARGO_TARGET_DIR/debug/tkre" export --out "$dir" --precision fp16 \
    --name "all-MiniLM-L6-v2 (base, fp16)" >/dev/null
fi
echo "$dir"
