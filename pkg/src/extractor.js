// The extractor on the calling thread: loads the wasm module and the model, then forwards to
// the Rust `Extractor`. The worker wrapper (worker-client.js) offers the same methods off the
// main thread.

import { Extractor, engineNames, initWasm } from './wasm.js';
import { defaultModelFiles, fetchModelFiles } from './model-files.js';
import { METHODS, normalizedArgs } from './methods.js';

export { initWasm };

/**
 * Loads a model and creates an extractor.
 * @param {import('./index.js').LoadOptions} options
 */
export async function createExtractor({ modelUrl, backend = 'auto', onProgress, onBackendChange, useCache = true, wasmUrl, maxLength } = {}) {
  // No modelUrl: the default model, from the package tkre-web-model-default.
  modelUrl ??= await defaultModelFiles();
  const started = performance.now();
  await initWasm(wasmUrl, onProgress);
  const engines = engineNames();
  if (!engines.includes(backend)) {
    throw new Error(`createExtractor: unknown backend "${backend}"; use ${engines.map((e) => `"${e}"`).join(', ')}`);
  }
  const { manifest, files, fromCache } = await fetchModelFiles(modelUrl, { onProgress, useCache });
  const create = async (which) => {
    // The wasm module checks the engine name (the comparison build knows more) and follows
    // the manifest's max_length and representation.
    const inner = await Extractor.create(
      files['config.json'], files['model.safetensors'], files['tokenizer.json'], JSON.stringify(manifest), which);
    if (maxLength !== undefined) {
      try {
        inner.setMaxLength(maxLength);
      } catch (error) {
        inner.free();
        throw error;
      }
    }
    return inner;
  };
  const inner = await create(backend);
  onProgress?.({ status: 'ready', stage: 'model', file: manifest.name, loaded: 0, total: 0, cached: fromCache });
  const loadInfo = { fromCache, loadMs: performance.now() - started };
  // wgpu's device-lost callback (GPUDevice.lost), through the wasm module: the WebGPU engine's
  // device only (burn's, in the comparison build, is not watched).
  const lost = inner.deviceLost();
  const gpu = lost ? { lost, createCpu: () => create('cpu'), onBackendChange } : null;
  return new RelationExtractor(inner, manifest, loadInfo, gpu);
}

// What a pending call resolves to when the WebGPU device is lost under it.
const LOST = Symbol('webgpu device lost');

export class RelationExtractor {
  #inner;
  #lost = null; // {message} once the WebGPU device is lost
  #lostSignal = new Promise(() => {});
  #createCpu = null;
  #onBackendChange = null;
  #recovery = null;
  #reason = null;

  /** Use createExtractor(); `gpu` ({lost, createCpu, onBackendChange}) when on WebGPU. */
  constructor(inner, manifest, loadInfo, gpu = null) {
    this.#inner = inner;
    this.manifest = manifest;
    this.loadInfo = loadInfo;
    if (gpu) this.#watch(gpu);
  }

  /** Watches the WebGPU device behind this extractor; a loss moves it to the CPU. */
  #watch({ lost, createCpu, onBackendChange }) {
    this.#createCpu = createCpu;
    this.#onBackendChange = onBackendChange ?? null;
    this.#lostSignal = lost.then((why) => {
      if (!this.#inner) return LOST; // disposed: freeing the model may destroy its device
      this.#lost = { message: `WebGPU device lost (${why})` };
      return LOST;
    });
  }

  /**
   * Rebuilds the extractor on the CPU with the same support set, without touching the dead
   * device again (the support set's examples are kept as the user gave them, off the GPU).
   */
  #recoverOnCpu() {
    this.#recovery ??= (async () => {
      const old = this.#inner;
      const supportSet = old.supportSetJson();
      const cpu = await this.#createCpu();
      await cpu.loadSupportSet(supportSet);
      this.#inner = cpu;
      this.#reason = `fell back to CPU after: ${this.#lost.message}`;
      this.#lostSignal = new Promise(() => {});
      try {
        old.free();
      } catch {
        // Its GPU buffers belong to a lost device; nothing else to release.
      }
      this.#onBackendChange?.({ backend: this.backend, backendReason: this.backendReason });
    })();
    return this.#recovery;
  }

  /**
   * Runs one call on the model. A WebGPU device lost before or during the call moves the
   * extractor to the CPU and the call runs again there, so the caller only sees a slower answer.
   */
  async #run(call) {
    if (this.#lost) await this.#recoverOnCpu();
    const inner = this.#alive();
    let result;
    try {
      result = await Promise.race([call(inner), this.#lostSignal]);
    } catch (error) {
      if (!this.#lost) throw error;
      result = LOST;
    }
    if (result !== LOST) return result;
    await this.#recoverOnCpu();
    return call(this.#alive());
  }

  /**
   * Test hook: destroys this extractor's WebGPU device, which the browser reports exactly as
   * a lost device. Resolves once the loss has been noticed.
   */
  async simulateDeviceLoss() {
    if (!this.#createCpu) throw new Error('simulateDeviceLoss: this extractor does not run on WebGPU');
    this.#alive().destroyDevice();
    await this.#lostSignal;
  }

  /** "webgpu" or "cpu". */
  get backend() {
    return this.#disposed?.backend ?? this.#inner.backend;
  }

  /** Why that backend was chosen (or why the extractor moved to the CPU). */
  get backendReason() {
    return this.#disposed?.backendReason ?? this.#reason ?? this.#inner.backendReason;
  }

  /** What the getters read after dispose() (the object stays readable; every call rejects). */
  #disposed = null;

  #alive() {
    if (!this.#inner) throw new Error('this extractor was disposed; create a new one');
    return this.#inner;
  }

  /**
   * Adds a relation: `{name, description, examples}`, each optional, but it needs examples or
   * text (text alone classifies zero-shot). Its text and examples are encoded once, now.
   */
  addRelation(...args) {
    const [key, options] = normalizedArgs('addRelation', args);
    return this.#run((x) => x.addRelation(key, options));
  }

  /** Replaces a relation's name and description (`null` clears them); encoded once, now. */
  async setRelationText(...args) {
    const [key, text] = normalizedArgs('setRelationText', args);
    await this.#run((x) => x.setRelationText(key, text));
  }

  /** Adds examples (marked sentences or {text, head, tail}) to a relation; each is encoded once. */
  addExamples(...args) {
    const [relation, examples] = normalizedArgs('addExamples', args);
    return this.#run((x) => x.addExamples(relation, examples));
  }

  async removeExample(relation, index) {
    await this.#run((x) => x.removeExample(relation, index));
  }

  async removeRelation(relation) {
    await this.#run((x) => x.removeRelation(relation));
  }

  async setNoneThreshold(...args) {
    const [threshold] = normalizedArgs('setNoneThreshold', args);
    await this.#run((x) => x.setNoneThreshold(threshold));
  }

  async relations() {
    return this.#run((x) => x.relations());
  }

  /** Classifies one query (resolves to a prediction) or an array of queries (to an array). */
  async classify(queries) {
    const many = Array.isArray(queries);
    const result = await this.#run((x) => x.classify(many ? queries : [queries]));
    return many ? result : result[0];
  }

  /**
   * Sentence embeddings: the L2-normalised mean of the last hidden states (as `tkre embed`
   * and sentence-transformers), one array of numbers per text; a single text gives one array.
   */
  async embed(texts) {
    const many = Array.isArray(texts);
    const vectors = await this.#run((x) => x.embed(many ? texts : [texts]));
    const result = Array.from(vectors, (v) => Array.from(v));
    return many ? result : result[0];
  }

  async saveSupportSet() {
    return this.#alive().supportSetJson();
  }

  async loadSupportSet(...args) {
    const [json] = normalizedArgs('loadSupportSet', args);
    return this.#run((x) => x.loadSupportSet(json));
  }

  /** Bytes the wasm module's linear memory holds now (it grows, never shrinks). */
  async memoryUsage() {
    const wasm = await initWasm();
    return { wasmBytes: wasm.memory.buffer.byteLength };
  }

  /** Frees the model's memory (GPU buffers included). */
  async dispose() {
    if (this.#disposed) return;
    this.#disposed = { backend: this.backend, backendReason: `${this.backendReason} (disposed)` };
    this.#inner.free();
    this.#inner = null;
  }
}

// RelationExtractor implements every method of the API table (methods.js).
for (const name of Object.keys(METHODS)) {
  if (typeof RelationExtractor.prototype[name] !== 'function') {
    throw new Error(`RelationExtractor lacks ${name} (pkg/src/methods.js lists it)`);
  }
}
