#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian 12 machine. Idempotent: each
# step checks first, so a second run takes seconds.
#  - Debian's rustc-web/cargo-web (1.96) + rust-web-src + lld: the wasm32 standard library is
#    built from source with them (rustup cannot fetch a wasm32 target here).
#  - binaryen for wasm-opt.
#  - the base model (scripts/fetch-base-model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rustc-web cargo-web rust-web-src)
command -v rust-lld >/dev/null 2>&1 || [ -e /usr/bin/rust-lld ] || need_apt+=(lld-22)
command -v wasm-opt >/dev/null 2>&1 || need_apt+=(binaryen)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

bash scripts/fetch-base-model.sh
