#!/usr/bin/env bash
# The README's main command: installs what the demo needs (the wasm toolchain; not the test
# browser or the LLM), builds the browser package, and serves the demo page with the committed
# default model on http://127.0.0.1:$PORT/ (default 8080), gzip-compressed, until stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup/install.sh --demo
bash scripts/dev/build-wasm.sh
model=$(bash scripts/dev/web-model.sh)
exec python3 scripts/dev/serve.py "$model"
