// The wasm module, initialised once (fetched from this package's own files, or `wasmUrl`),
// with download progress.

import init from '../wasm/tkre.js';

export { Extractor, engineNames, parseManifest, splitSentences } from '../wasm/tkre.js';

let wasmReady = null;

/**
 * Initialises the wasm module once; later calls return the same promise. `onProgress` gets
 * `{status: 'download' | 'done', stage: 'wasm', file, loaded, total}` while it downloads
 * (`total` 0 when the server does not say, or compresses it).
 */
export function initWasm(wasmUrl, onProgress) {
  wasmReady ??= init({ module_or_path: fetchWithProgress(wasmUrl ?? new URL('../wasm/tkre_bg.wasm', import.meta.url), onProgress) });
  return wasmReady;
}

async function fetchWithProgress(url, onProgress) {
  const response = await fetch(url);
  const file = 'tkre_bg.wasm';
  if (!onProgress || !response.ok || !response.body) return response;
  const declared = Number(response.headers.get('content-length'));
  const total = Number.isFinite(declared) && !response.headers.get('content-encoding') ? declared : 0;
  let loaded = 0;
  const counted = response.body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        loaded += chunk.length;
        onProgress({ status: 'download', stage: 'wasm', file, loaded, total });
        controller.enqueue(chunk);
      },
      flush() {
        onProgress({ status: 'done', stage: 'wasm', file, loaded, total: loaded });
      },
    }),
  );
  // Compiled while it streams in (WebAssembly.instantiateStreaming needs this content type).
  return new Response(counted, { status: response.status, headers: { 'Content-Type': 'application/wasm' } });
}
