#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian 12 machine. Idempotent: each
# step checks first, so a second run takes seconds.
#  - a wasm32 toolchain: rustup's wasm32-unknown-unknown target with its rust-src component
#    when rustup has the target, else Debian's rustc-web/cargo-web (1.96) + rust-web-src + lld
#    (the wasm32 standard library is built from source with them).
#  - chromium for the browser tests (WebGPU on SwiftShader).
#  - Mesa's lavapipe (mesa-vulkan-drivers): a software Vulkan device for the native WebGPU tests.
#  - binaryen 132 from npm for wasm-opt (Debian's 108 is too old for reference types).
#  - wasm-bindgen-cli (cargo install), matching Cargo.lock.
#  - the base model (scripts/setup/fetch-base-model.sh).
#   bash scripts/setup/install.sh [--demo]    --demo: only what the demo needs (the wasm build)
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
demo_only=false
[ "${1:-}" = "--demo" ] && demo_only=true

need_apt=()
# A wasm32 toolchain: rustup's target if present, else Debian's rustc-web (scripts/dev/build-wasm.sh).
if ! { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; }; then
  [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rustc-web cargo-web rust-web-src)
  command -v rust-lld >/dev/null 2>&1 || [ -e /usr/bin/rust-lld ] || need_apt+=(lld-22)
elif ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  # The threaded wasm rebuilds the standard library; without its source the package is built
  # for one thread only (build-wasm.sh says so).
  rustup component add rust-src >&2 || echo "install.sh: no rust-src; the wasm will be built for one thread only" >&2
fi
if ! $demo_only; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  # A software Vulkan device (Mesa's lavapipe) for the native WebGPU engine's tests.
  [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 \
    || need_apt+=(mesa-vulkan-drivers libvulkan1)
  # The synthesis test's LLM server: a venv, and a C++ compiler for the llama-cpp-python wheel.
  python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
  command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# wasm-bindgen-cli must equal the wasm-bindgen version in Cargo.lock.
bindgen_version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if ! "$HOME/.cargo/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $bindgen_version\b"; then
  echo "installing wasm-bindgen-cli $bindgen_version (a few minutes)" >&2
  # Not --locked: one of its locked dependencies is not on the registry here.
  cargo install --quiet wasm-bindgen-cli --version "$bindgen_version"
fi

if [ ! -x "$TKRE_CACHE/tools/binaryen/node_modules/.bin/wasm-opt" ]; then
  mkdir -p "$TKRE_CACHE/tools/binaryen"
  (cd "$TKRE_CACHE/tools/binaryen" && npm install --no-audit --no-fund --silent binaryen@132.0.0)
fi
# The demo serves the committed default model (models/default/): nothing more to fetch.
$demo_only && exit 0

bash scripts/setup/fetch-base-model.sh

# Browser-test dependencies (playwright-core drives Debian's chromium; it downloads no browser):
# installed again when one listed in package.json is missing.
if ! (cd tests/browser && node -e '
  const { devDependencies } = require("./package.json");
  for (const name of Object.keys(devDependencies)) require.resolve(`${name}/package.json`);' 2>/dev/null); then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

# The local LLM server of the synthesis test (llama-cpp-python wheel built once, cached).
bash scripts/setup/llm.sh >/dev/null
