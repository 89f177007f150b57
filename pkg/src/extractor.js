// The extractor on the calling thread: loads the wasm module and the model, then forwards to
// the Rust `Extractor`. The worker wrapper (worker-client.js) offers the same methods off the
// main thread.

import init, { Extractor } from '../wasm/tkre.js';
import { fetchModelFiles } from './model-files.js';

let wasmReady = null;

/** Initialises the wasm module once (it is fetched from this package's own files). */
export function initWasm(wasmUrl) {
  wasmReady ??= init(wasmUrl ? { module_or_path: wasmUrl } : undefined);
  return wasmReady;
}

/**
 * Loads a model and creates an extractor.
 * @param {import('./index.js').LoadOptions} options
 */
export async function createExtractor({ modelUrl, backend = 'auto', onProgress, useCache = true, wasmUrl } = {}) {
  if (!modelUrl) throw new Error('createExtractor: give modelUrl, the URL of a model directory with manifest.json');
  if (!['auto', 'webgpu', 'cpu', 'flex'].includes(backend)) {
    throw new Error(`createExtractor: unknown backend "${backend}"; use "auto", "webgpu" or "cpu" ("flex": burn's flex CPU backend)`);
  }
  const started = performance.now();
  await initWasm(wasmUrl);
  const { manifest, files, fromCache } = await fetchModelFiles(modelUrl, { onProgress, useCache });
  const inner = await Extractor.create(
    files['config.json'],
    files['model.safetensors'],
    files['tokenizer.json'],
    backend,
  );
  return new RelationExtractor(inner, manifest, { fromCache, loadMs: performance.now() - started });
}

export class RelationExtractor {
  #inner;

  constructor(inner, manifest, loadInfo) {
    this.#inner = inner;
    this.manifest = manifest;
    this.loadInfo = loadInfo;
  }

  /** "webgpu" or "cpu". */
  get backend() {
    return this.#inner.backend;
  }

  /** Why that backend was chosen. */
  get backendReason() {
    return this.#inner.backendReason;
  }

  #alive() {
    if (!this.#inner) throw new Error('this extractor was disposed; create a new one');
    return this.#inner;
  }

  /** Adds examples (marked sentences or {text, head, tail}) to a relation; each is encoded once. */
  addExamples(relation, examples) {
    return this.#alive().addExamples(relation, Array.isArray(examples) ? examples : [examples]);
  }

  async removeExample(relation, index) {
    this.#alive().removeExample(relation, index);
  }

  async removeRelation(relation) {
    this.#alive().removeRelation(relation);
  }

  async setNoneThreshold(threshold) {
    this.#alive().setNoneThreshold(threshold ?? undefined);
  }

  async relations() {
    return this.#alive().relations();
  }

  /** Classifies one query (resolves to a prediction) or an array of queries (to an array). */
  async classify(queries) {
    const many = Array.isArray(queries);
    const result = await this.#alive().classify(many ? queries : [queries]);
    return many ? result : result[0];
  }

  async saveSupportSet() {
    return this.#alive().supportSetJson();
  }

  async loadSupportSet(json) {
    return this.#alive().loadSupportSet(typeof json === 'string' ? json : JSON.stringify(json));
  }

  /** Frees the model's memory (GPU buffers included). */
  async dispose() {
    this.#inner?.free();
    this.#inner = null;
  }
}
