// The wasm module, initialised once (fetched from this package's own files, or `wasmUrl`).

import init from '../wasm/tkre.js';

export { Extractor, engineNames, parseManifest } from '../wasm/tkre.js';

let wasmReady = null;

/** Initialises the wasm module once; later calls return the same promise. */
export function initWasm(wasmUrl) {
  wasmReady ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return wasmReady;
}
