#!/usr/bin/env python3
"""Serves the demo page on 127.0.0.1 (standard library only).

URL layout:
  /                  www/ (the demo page)
  /pkg/              pkg/ (the npm package: src/ and the built wasm/)
  /examples/         examples/ (the example support set)
  /bench/            bench/ (the browser benchmark page)
  /models/default/   the default browser model directory (manifest.json + files)
  /models/NAME/      $TKRE_WEB_MODELS/NAME (other exported models, for the benchmarks)
Every response carries COOP/COEP (cross-origin isolation: the package's threaded build), except
one asked for with the query `isolation=off`.
  /onnx-models/      $TKRE_ONNX_MODELS (bench/compare.js: transformers.js's model layout)
  /transformers/     transformers.js's browser bundle (bench/transformers-js, when installed)

Usage: PORT=8080 python3 scripts/dev/serve.py MODEL_DIR
Prints the page's URL and serves until stopped.
"""

import gzip
import http.server
import io
import os
import posixpath
import socketserver
import urllib.parse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Sent gzip-compressed to a client that accepts it, as a static host would; the model's
# weights are not (int8 and f16 barely compress, and hosts rarely compress binaries).
COMPRESSIBLE = {".wasm", ".js", ".mjs", ".json", ".html", ".css", ".txt"}
_compressed = {}


class Handler(http.server.SimpleHTTPRequestHandler):
    routes = {}

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
        ".onnx": "application/octet-stream",
    }

    def translate_path(self, path):
        path = urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0])
        base, rest = ROOT / "www", path
        for prefix, directory in self.routes.items():
            if path.startswith(prefix):
                base, rest = directory, path[len(prefix):]
                break
        # Normalise and drop "." / ".." so no request escapes its directory.
        parts = [p for p in posixpath.normpath("/" + rest).split("/") if p not in ("", ".", "..")]
        target = base.joinpath(*parts)
        return str(target) + ("/" if path.endswith("/") else "")

    def send_head(self):
        path = Path(self.translate_path(self.path))
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (accepts and path.suffix in COMPRESSIBLE and path.is_file()):
            return super().send_head()
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _compressed:
            _compressed[key] = gzip.compress(path.read_bytes(), 9)
        body = _compressed[key]
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)

    def end_headers(self):
        # Cross-origin isolation, so that the page may share memory with Web Workers (the
        # threaded wasm build). A page asked for with `?isolation=off` is served without it, as
        # a host that sends no such headers would: the package then runs on one thread.
        if "isolation=off" not in urllib.parse.urlsplit(self.path).query:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, fmt, *args):
        if os.environ.get("TKRE_SERVE_QUIET") != "1":
            super().log_message(fmt, *args)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: PORT=8080 python3 scripts/dev/serve.py MODEL_DIR")
    model_dir = Path(sys.argv[1]).resolve()
    if not (model_dir / "manifest.json").is_file():
        sys.exit(f"error: {model_dir}/manifest.json not found; export a model with `tkre export`")
    if not (ROOT / "pkg" / "wasm" / "tkre_bg.wasm").is_file():
        sys.exit("error: pkg/wasm/tkre_bg.wasm not found; run scripts/dev/build-wasm.sh first")
    Handler.routes = {
        "/pkg/": ROOT / "pkg",
        "/examples/": ROOT / "examples",
        "/bench/": ROOT / "bench",
        "/models/default/": model_dir,
    }
    # Benchmark-only routes, when their directories are given or installed.
    if os.environ.get("TKRE_WEB_MODELS"):
        Handler.routes["/models/"] = Path(os.environ["TKRE_WEB_MODELS"]).resolve()
    if os.environ.get("TKRE_ONNX_MODELS"):
        Handler.routes["/onnx-models/"] = Path(os.environ["TKRE_ONNX_MODELS"]).resolve()
    transformers = ROOT / "bench" / "transformers-js" / "node_modules" / "@huggingface" / "transformers" / "dist"
    if transformers.is_dir():
        Handler.routes["/transformers/"] = transformers
    port = int(os.environ.get("PORT", "8080"))
    socketserver.TCPServer.allow_reuse_address = True
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
