// The worker wrapper: the same API as RelationExtractor, with the model in a Web Worker so
// that encoding never freezes the page.

import { METHODS, normalizedArgs, callSignal, abortError } from './methods.js';
import { defaultModelFiles, resolveModelLocation } from './model-files.js';

// Kinds of errors after which the worker cannot be trusted: a wasm trap (a panic aborts the
// module) or the worker itself failing. Decided on the kind the worker sends, never on the
// message, which may quote user text ("the device was lost" is a fine sentence to classify).
// A lost WebGPU device is handled inside the worker (RelationExtractor moves to the CPU).
const FATAL_KINDS = new Set(['trap', 'worker-failed']);

/**
 * A worker running this package's worker.js. Served from another origin (a CDN), the script
 * cannot be a Worker's URL (SecurityError), so a same-origin blob module imports it instead
 * (the CDN must send CORS headers, as they do for module scripts).
 */
function spawnWorker() {
  try {
    // Written out in full: bundlers (Vite, webpack) find the worker by this exact form.
    return new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  } catch (e) {
    if (e?.name !== 'SecurityError') throw e;
    // Not `new URL(...)`, which a bundler would copy as a raw asset.
    const script = import.meta.url.replace(/[^/]*$/, 'worker.js');
    const source = new Blob([`import ${JSON.stringify(script)};`], { type: 'text/javascript' });
    return new Worker(URL.createObjectURL(source), { type: 'module' });
  }
}

function errorOfKind(message, kind) {
  // An abort inside the worker reaches the caller as the AbortError it would get on the page.
  if (kind === 'aborted') return new DOMException(message, 'AbortError');
  return Object.assign(new Error(message), { kind });
}

export class WorkerExtractor {
  // What the loaded model reports (the worker's answer to `load`, or a recovery's).
  /** @type {string} */ backend;
  /** @type {string} */ backendReason;
  /** @type {number} */ threads;
  /** @type {string} */ threadsReason;
  /** @type {import('./index.js').ModelManifest | null} */ manifest;
  /** @type {{fromCache: boolean, verified: boolean, loadMs: number}} */ loadInfo;
  #worker;
  #pending = new Map();
  #nextId = 1;
  #onProgress = null;
  #onBackendChange = null;
  #options = null;
  #supportSet = null;
  #recovered = false;
  #disposed = false;
  #createWorker;

  /** `worker`: a Worker running this package's worker.js; `createWorker` makes another one
   *  for the recovery after a fatal error (default: the package's own). */
  constructor(worker, createWorker = spawnWorker) {
    this.#createWorker = createWorker;
    this.#attach(worker);
  }

  static {
    // One forwarding method per API method (methods.js); an edit refreshes the recovery copy.
    for (const [name, spec] of Object.entries(METHODS)) {
      const edits = 'edits' in spec && spec.edits;
      this.prototype[name] = async function (...given) {
        const { args, signal, onProgress } = normalizedArgs(name, given);
        // An edit is all or nothing: after an abort its answer is still awaited (it is an
        // AbortError only if the edit had not started).
        const result = await this.#call(name, args, { signal, onProgress, waitAfterAbort: edits });
        return edits ? this.#remember(result) : result;
      };
    }
  }

  #attach(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      if (data.progress) {
        this.#onProgress?.(data.progress);
        return;
      }
      if (data.callProgress) {
        this.#pending.get(data.id)?.onProgress?.(data.callProgress);
        return;
      }
      if (data.backendChanged) {
        // The worker's extractor lost its WebGPU device and moved to the CPU by itself.
        Object.assign(this, data.backendChanged);
        this.#onBackendChange?.(data.backendChanged);
        return;
      }
      const pending = this.#pending.get(data.id);
      if (!pending) return;
      this.#pending.delete(data.id);
      if ('error' in data) pending.reject(errorOfKind(data.error, data.kind ?? 'error'));
      else pending.resolve(data.result);
    };
    const failed = (event) => {
      // A script that cannot be fetched (404, CORS) gives a plain Event with no message.
      const why = event.message ?? 'its script could not be loaded or did not start (is tkre-web/worker.js served?)';
      const error = errorOfKind(`worker failed: ${why}`, 'worker-failed');
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    };
    worker.onerror = failed;
    worker.onmessageerror = failed;
  }

  /**
   * Posts one call. With a signal, an abort tells the worker (which stops between slices of
   * the work) and rejects at once, unless `waitAfterAbort`: then the worker's answer decides.
   * @param {string} method
   * @param {unknown[]} [args]
   * @param {{signal?: AbortSignal, onProgress?: (p: unknown) => void, waitAfterAbort?: boolean}} [how]
   */
  #send(method, args = [], { signal, onProgress, waitAfterAbort = false } = {}) {
    // A terminated worker never answers: reject at once instead of waiting forever.
    if (this.#disposed) return Promise.reject(errorOfKind('this extractor was disposed; create a new one', 'disposed'));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = this.#nextId++;
    const worker = this.#worker;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        worker.postMessage({ cancel: id });
        if (waitAfterAbort) return;
        this.#pending.delete(id);
        reject(abortError(signal));
      };
      const done = (settle) => (value) => {
        signal?.removeEventListener('abort', onAbort);
        settle(value);
      };
      this.#pending.set(id, { resolve: done(resolve), reject: done(reject), onProgress });
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.postMessage({ id, method, args, abortable: Boolean(signal), progress: Boolean(onProgress) });
    });
  }

  /**
   * Calls the worker. If the call dies with a fatal error (a wasm trap, a lost WebGPU device),
   * starts a fresh worker on the CPU with the last known support set and retries once.
   */
  async #call(method, args, how) {
    try {
      return await this.#send(method, args, how);
    } catch (error) {
      if (!FATAL_KINDS.has(error.kind) || !this.#options || this.#recovered) throw error;
      this.#recovered = true;
      await this.#recoverOnCpu(error);
      return this.#send(method, args, how);
    }
  }

  async #recoverOnCpu(error) {
    this.#worker.terminate();
    this.#attach(this.#createWorker());
    const info = await this.#send('load', [{ ...this.#options, backend: 'cpu' }]);
    Object.assign(this, info);
    this.backendReason = `fell back to CPU after: ${error.message}`;
    if (this.#supportSet) await this.#send('loadSupportSet', [this.#supportSet]);
    this.#onBackendChange?.({ backend: this.backend, backendReason: this.backendReason });
  }

  /** Keeps a copy of the support set so that a recovery can restore it. */
  async #remember(result) {
    this.#supportSet = await this.#send('saveSupportSet');
    return result;
  }

  // `worker` is createWorkerExtractor's option, not the worker's: it stays out of `options`.
  /** @param {import('./index.js').LoadOptions} [loadOptions] */
  async load({ onProgress, onBackendChange, worker: _worker, signal, ...options } = {}) {
    signal = callSignal('load', { signal });
    this.#onProgress = onProgress ?? null;
    this.#onBackendChange = onBackendChange ?? null;
    // The model's address as the page sees it: a relative URL would otherwise resolve against
    // the worker's script, and the default model's URLs come from the page's bundle. URLs travel
    // as strings (a URL object cannot be posted to a worker).
    options.modelUrl = resolveModelLocation(options.modelUrl ?? (await defaultModelFiles()));
    for (const key of ['wasmUrl', 'threadsWasmUrl']) {
      if (options[key] != null) options[key] = new URL(String(options[key]), globalThis.location?.href).href;
    }
    this.#options = options;
    const info = await this.#call('load', [options], { signal });
    Object.assign(this, info);
    return info;
  }

  /** Test hook (not in the public types): destroys the worker's WebGPU device, as a GPU
   *  reset would (see RelationExtractor). */
  simulateDeviceLoss() {
    return this.#send('simulateDeviceLoss');
  }
  /** Test hook (not in the public types): makes the worker fail as a trapped module would
   *  (exercises the CPU recovery). */
  simulateFatalError() {
    return this.#send('simulateFatalError');
  }
  /** Frees the model and ends the worker; the object stays readable, and later calls reject. */
  async dispose() {
    if (this.#disposed) return;
    try {
      await this.#call('dispose');
    } finally {
      this.#worker.terminate();
      this.#disposed = true;
      this.backendReason = `${this.backendReason} (disposed)`;
    }
  }
}

/**
 * Starts a worker and loads a model in it.
 * @param {import('./index.js').LoadOptions} options
 */
export async function createWorkerExtractor(options = {}) {
  // `worker`: your own Worker, or a function that makes one (also used for the recovery).
  const { worker: given } = options;
  const createWorker = typeof given === 'function' ? given : spawnWorker;
  const worker = given instanceof Worker ? given : createWorker();
  const extractor = new WorkerExtractor(worker, createWorker);
  try {
    await extractor.load(options);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return extractor;
}
