#!/usr/bin/env bash
# The README's main command. For now (before the browser package lands) it installs what is
# missing, builds the `tkre` CLI and classifies the example queries against the example
# support set with the default (base) model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --quiet -p tkre-trainer
tkre="$CARGO_TARGET_DIR/debug/tkre"
echo "== tkre classify --support examples/support_set.json --format text < examples/queries.txt" >&2
"$tkre" classify --support examples/support_set.json --format text < examples/queries.txt
