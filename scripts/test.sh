#!/usr/bin/env bash
# The project's test command (README): installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/setup/install.sh

echo "== cargo test (native, CPU backend)" >&2
cargo test --workspace 2>&1

# The GPU training path, without a GPU: both pre-training stages on burn's wgpu backend over
# Mesa's lavapipe (a software Vulkan device), against the CPU run's losses.
echo "== cargo test: pre-training on wgpu (lavapipe)" >&2
cargo test -p tkre-trainer --features wgpu --test pretrain both_stages_train_on_a_gpu 2>&1

echo "== browser package: wasm build, default model" >&2
bash scripts/dev/build-wasm.sh
bash scripts/dev/web-model.sh >/dev/null
# transformers.js and the same model as ONNX, for the comparison benchmark's CI-sized run.
bash scripts/setup/onnx.sh >/dev/null

echo "== browser tests (headless Chromium: WebGPU on SwiftShader, and CPU)" >&2
(cd tests/browser && npm test 2>&1)
