#!/usr/bin/env bash
# The README's main command: installs what is missing, builds the browser package and the
# default model, and serves the demo page on http://127.0.0.1:$PORT/ (default 8080) until
# stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup/install.sh
bash scripts/dev/build-wasm.sh
model=$(bash scripts/dev/web-model.sh)
exec python3 scripts/dev/serve.py "$model"
