#!/usr/bin/env bash
# The project's test command (README): installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/setup.sh

echo "== cargo test (native, CPU backend)" >&2
cargo test --workspace 2>&1

echo "== library builds for wasm32-unknown-unknown" >&2
bash scripts/build-wasm.sh --check
