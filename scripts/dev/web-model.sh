#!/usr/bin/env bash
# Prints the default browser model directory: models/default/, committed (int8 weights,
# manifest.json with the model card and score calibration), so nothing is trained or exported
# to serve it. scripts/experiments/default-model.sh makes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="$PWD/models/default"
if [ ! -f "$dir/manifest.json" ]; then
  echo "web-model.sh: $dir/manifest.json is missing; check out models/default/ again (git checkout -- models/default) or make it with scripts/experiments/default-model.sh" >&2
  exit 1
fi
echo "$dir"
