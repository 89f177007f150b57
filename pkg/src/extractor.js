// The extractor on the calling thread: loads the wasm module and the model, then forwards to
// the Rust `Extractor`. The worker wrapper (worker-client.js) offers the same methods off the
// main thread.

import { initWasm } from './wasm.js';
import { defaultModelFiles, fetchModelFiles } from './model-files.js';
import { METHODS, normalizedArgs, callSignal, abortError, inputError } from './methods.js';

export { initWasm };

/**
 * Loads a model and creates an extractor.
 * @param {import('./index.js').LoadOptions} options
 */
export async function createExtractor({ modelUrl, backend = 'auto', threads = 'auto', onProgress, onBackendChange, useCache = true, wasmUrl, threadsWasmUrl, maxLength, signal } = {}) {
  signal = callSignal('createExtractor', { signal });
  signal?.throwIfAborted();
  // No modelUrl: the default model, from the package tkre-web-model-default.
  const location = modelUrl ?? (await defaultModelFiles());
  const started = performance.now();
  const loaded = await initWasm(wasmUrl, onProgress, { threads, threadsWasmUrl });
  const { Extractor } = loaded.wasm;
  signal?.throwIfAborted();
  const engines = loaded.wasm.engineNames();
  if (!engines.includes(backend)) {
    throw new Error(`createExtractor: unknown backend "${backend}"; use ${engines.map((e) => `"${e}"`).join(', ')}`);
  }
  const { manifest, files, fromCache, verified } = await fetchModelFiles(location, { onProgress, useCache, signal });
  signal?.throwIfAborted();
  const create = async (which) => {
    // The wasm module checks the engine name (the comparison build knows more) and follows
    // the manifest's max_length and representation.
    const inner = await Extractor.create(
      files['config.json'], files['model.safetensors'], files['tokenizer.json'], manifest ? JSON.stringify(manifest) : undefined, which);
    try {
      if (maxLength !== undefined) inner.setMaxLength(maxLength);
      const head = files['mention_head.json'];
      if (head) inner.setMentionHead(new TextDecoder().decode(head));
    } catch (error) {
      inner.free();
      throw error;
    }
    return inner;
  };
  const inner = await create(backend);
  if (signal?.aborted) {
    inner.free();
    throw abortError(signal);
  }
  onProgress?.({ status: 'ready', stage: 'model', file: manifest?.name ?? 'model', loaded: 0, total: 0, cached: fromCache });
  const loadInfo = { fromCache, verified, loadMs: performance.now() - started };
  // wgpu's device-lost callback (GPUDevice.lost), through the wasm module: the WebGPU engine's
  // device only (burn's, in the comparison build, is not watched).
  const lost = inner.deviceLost();
  const gpu = lost ? { lost, createCpu: () => create('cpu'), onBackendChange } : null;
  return new RelationExtractor(inner, manifest, loadInfo, gpu, loaded);
}

// With a signal, queries go into the wasm module in slices sized from the measured time per
// query so that one slice takes about SLICE_MS: an abort waits at most one slice, on a fast
// machine or a busy one. The first slice is small because its time per query is not known yet.
const SLICE_MS = 100;
const FIRST_SLICE = 4;
const MAX_SLICE = 256;

/**
 * Runs `work(firstIndex, slice)` over `list`: in one call without a signal, else in timed
 * slices with a chance to abort before each. Resolves to the concatenated results.
 */
async function inSlices(list, signal, work) {
  if (!signal) return work(0, list);
  const results = [];
  let first = 0;
  let size = FIRST_SLICE;
  do {
    await nextTask(signal);
    const slice = list.slice(first, first + size);
    const started = performance.now();
    results.push(...(await work(first, slice)));
    const msPerItem = Math.max((performance.now() - started) / Math.max(slice.length, 1), 1e-3);
    first += slice.length;
    size = Math.max(1, Math.min(MAX_SLICE, Math.floor(SLICE_MS / msPerItem)));
  } while (first < list.length);
  return results;
}

/** Lets other tasks (a worker's abort message) run, then checks the signal. */
async function nextTask(signal) {
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (signal?.aborted) throw abortError(signal);
}

// Sentences and characters per call into the wasm module during extract: an abort or a
// progress report waits at most one slice (the pairs of its mentions).
const SENTENCES_PER_SLICE = 4;
const SLICE_CHARS = 800;

/** For each code point of `text` (and its end), the UTF-16 index where it starts. */
function codeUnitOffsets(text) {
  const offsets = [];
  let unit = 0;
  for (const ch of text) {
    offsets.push(unit);
    unit += ch.length;
  }
  offsets.push(unit);
  return offsets;
}

// What a pending call resolves to when the WebGPU device is lost under it.
const LOST = Symbol('webgpu device lost');

/** @typedef {import('./index.js').ExtractorMethods} ExtractorMethods */

/** @implements {ExtractorMethods} */
export class RelationExtractor {
  /** @type {import('../wasm/tkre.js').Extractor | null} */
  #inner;
  /** @type {{message: string} | null} once the WebGPU device is lost */
  #lost = null;
  /** @type {Promise<unknown>} */
  #lostSignal = new Promise(() => {});
  /** @type {(() => Promise<import('../wasm/tkre.js').Extractor>) | null} */
  #createCpu = null;
  /** @type {((info: {backend: string, backendReason: string}) => void) | null} */
  #onBackendChange = null;
  /** @type {Promise<void> | null} */
  #recovery = null;
  /** @type {string | null} */
  #reason = null;
  /** @type {import('./wasm.js').LoadedWasm} */
  #wasm;

  /**
   * Use createExtractor(); `gpu` ({lost, createCpu, onBackendChange}) when on WebGPU.
   * @param {import('../wasm/tkre.js').Extractor} inner
   * @param {import('./index.js').ModelManifest | null} manifest
   * @param {{fromCache: boolean, verified: boolean, loadMs: number}} loadInfo
   * @param {{lost: Promise<unknown>, createCpu: () => Promise<import('../wasm/tkre.js').Extractor>, onBackendChange?: (info: {backend: string, backendReason: string}) => void} | null} gpu
   * @param {import('./wasm.js').LoadedWasm} loaded the wasm build it runs on
   */
  constructor(inner, manifest, loadInfo, gpu, loaded) {
    this.#inner = inner;
    this.#wasm = loaded;
    this.manifest = manifest;
    this.loadInfo = loadInfo;
    if (gpu) this.#watch(gpu);
  }

  /** Watches the WebGPU device behind this extractor; a loss moves it to the CPU.
   *  @param {{lost: Promise<unknown>, createCpu: () => Promise<import('../wasm/tkre.js').Extractor>, onBackendChange?: (info: {backend: string, backendReason: string}) => void}} gpu */
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
  async #run(call, signal) {
    if (signal?.aborted) throw abortError(signal);
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

  /** CPU threads a query computes on: the threaded build's Web Workers on the CPU backend
   *  (a cross-origin isolated page), else 1; 1 on WebGPU. */
  get threads() {
    return this.#disposed?.threads ?? this.#inner.threads;
  }

  /** Why that many threads. */
  get threadsReason() {
    if (this.backend !== 'cpu') return `1 thread: the ${this.backend} backend computes on its device`;
    return this.#wasm.threadsReason;
  }

  /** What the getters read after dispose() (the object stays readable; every call rejects).
   *  @type {{backend: string, backendReason: string, threads: number} | null} */
  #disposed = null;

  #alive() {
    if (!this.#inner) throw new Error('this extractor was disposed; create a new one');
    return this.#inner;
  }

  /**
   * Adds a relation: `{name, description, examples}`, each optional, but it needs examples or
   * text (text alone classifies zero-shot). Its text and examples are encoded once, now.
   * An edit is all or nothing: an abort stops it only before it starts.
   */
  addRelation(...given) {
    const { args: [key, options], signal } = normalizedArgs('addRelation', given);
    return this.#run((x) => x.addRelation(key, options), signal);
  }

  /** Replaces a relation's name and description (`null` clears them); encoded once, now. */
  async setRelationText(...given) {
    const { args: [key, text] } = normalizedArgs('setRelationText', given);
    await this.#run((x) => x.setRelationText(key, text));
  }

  /** Adds examples (marked sentences or {text, head, tail}) to a relation; each is encoded once. */
  addExamples(...given) {
    const { args: [relation, examples], signal } = normalizedArgs('addExamples', given);
    return this.#run((x) => x.addExamples(relation, examples), signal);
  }

  async removeExample(relation, index) {
    await this.#run((x) => x.removeExample(relation, index));
  }

  async removeRelation(relation) {
    await this.#run((x) => x.removeRelation(relation));
  }

  async setNoneThreshold(...given) {
    const { args: [threshold] } = normalizedArgs('setNoneThreshold', given);
    await this.#run((x) => x.setNoneThreshold(threshold));
  }

  async relations() {
    return this.#run((x) => x.relations());
  }

  /**
   * Classifies one query (resolves to a prediction, or rejects) or an array of queries (to one
   * item per query: a prediction, or `{error, kind}` for a query that could not be read).
   * With a signal, the queries go in slices of about SLICE_MS and an abort stops between slices.
   */
  async classify(queries, options) {
    const { args: [given], signal } = normalizedArgs('classify', [queries, options]);
    const many = Array.isArray(given);
    const list = many ? given : [given];
    const items = await inSlices(list, signal, (first, slice) => this.#run((x) => x.classify(slice, first), signal));
    if (many) return items;
    if (items[0].error !== undefined) throw inputError(items[0].error, items[0].kind);
    return items[0];
  }

  /**
   * Sentence embeddings: the L2-normalised mean of the last hidden states (as `tkre embed`
   * and sentence-transformers), one array of numbers per text; a single text gives one array.
   */
  async embed(texts, options) {
    const { args: [given], signal } = normalizedArgs('embed', [texts, options]);
    const many = Array.isArray(given);
    const embedSlice = async (_, slice) => Array.from(await this.#run((x) => x.embed(slice), signal), (v) => Array.from(v));
    const result = await inSlices(many ? given : [given], signal, embedSlice);
    return many ? result : result[0];
  }

  /**
   * Relations in a document: its sentences, the entity mentions in each (`mentions` you
   * marked, names of your `entities` list, and proposed ones unless `propose: false`) and a
   * triple for every ordered pair of mentions whose answer is a relation (`threshold`: the
   * none-of-the-above similarity, default the model's). Sentences go to the model in slices
   * of SENTENCES_PER_SLICE (SLICE_CHARS): `onProgress({status: 'extract', done, total})` after each, and an
   * abort stops between slices.
   */
  async extract(text, options, call) {
    const { args: [document, extractOptions], signal, onProgress } = normalizedArgs('extract', [text, options, call]);
    if (typeof document !== 'string') throw inputError('extract takes the document as a string');
    const sentences = this.#wasm.wasm.splitSentences(document);
    const units = codeUnitOffsets(document);
    const result = { sentences: [], mentions: [], triples: [] };
    for (let i = 0; i < sentences.length; ) {
      // A slice: up to SENTENCES_PER_SLICE sentences and SLICE_CHARS characters (at least one).
      let j = i + 1;
      while (j < sentences.length && j - i < SENTENCES_PER_SLICE && sentences[j].end - sentences[i].start <= SLICE_CHARS) j += 1;
      const slice = sentences.slice(i, j);
      i = j;
      const first = slice[0].start;
      const piece = document.slice(units[first], units[slice[slice.length - 1].end]);
      const found = await this.#run((x) => x.extractSentences(piece, first, slice, extractOptions), signal);
      for (const { sentence, mentions, triples } of found) {
        result.sentences.push(sentence);
        result.mentions.push(...mentions);
        result.triples.push(...triples);
      }
      onProgress?.({ status: 'extract', done: i, total: sentences.length });
      // Lets the page (or the worker's abort message) in between slices.
      if (signal || onProgress) await nextTask(signal);
    }
    return result;
  }

  async saveSupportSet() {
    return this.#alive().supportSetJson();
  }

  /** Replaces the support set (all or nothing: an abort stops it only before it starts). */
  async loadSupportSet(...given) {
    const { args: [json], signal } = normalizedArgs('loadSupportSet', given);
    return this.#run((x) => x.loadSupportSet(json), signal);
  }

  /** Bytes the wasm module's linear memory holds now (it grows, never shrinks). */
  async memoryUsage() {
    return { wasmBytes: this.#wasm.memory.buffer.byteLength };
  }

  /** Frees the model's memory (GPU buffers included). */
  async dispose() {
    if (this.#disposed) return;
    this.#disposed = { backend: this.backend, backendReason: `${this.backendReason} (disposed)`, threads: this.threads };
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
