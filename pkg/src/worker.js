// Web Worker side of the worker wrapper: owns one RelationExtractor and answers messages
// {id, method, args} with {id, result} or {id, error}.

import { createExtractor } from './extractor.js';
import { METHODS } from './methods.js';

let extractor = null;

const methods = {
  /** @param {import('./index.js').LoadOptions} options @param {{signal?: AbortSignal}} [call] */
  async load(options, { signal } = {}) {
    await extractor?.dispose();
    extractor = await createExtractor({
      ...options,
      signal,
      onProgress: (p) => self.postMessage({ progress: p }),
      onBackendChange: (info) => self.postMessage({ backendChanged: { ...info, threads: extractor.threads, threadsReason: extractor.threadsReason } }),
    });
    return {
      backend: extractor.backend,
      backendReason: extractor.backendReason,
      threads: extractor.threads,
      threadsReason: extractor.threadsReason,
      manifest: extractor.manifest,
      loadInfo: extractor.loadInfo,
    };
  },
};

// Test hook for the recovery path: after this, the worker behaves like a trapped module.
let dead = false;
methods.simulateFatalError = async () => {
  dead = true;
  throw new WebAssembly.RuntimeError('unreachable (simulated)');
};

for (const name of [...Object.keys(METHODS), 'simulateDeviceLoss', 'dispose']) {
  methods[name] = (...args) => {
    if (!extractor) throw new Error('no model loaded; call load() first');
    return extractor[name](...args);
  };
}

// The calls that can still be aborted, by id.
const controllers = new Map();

async function answer({ id, method, args, abortable, progress, cancel }) {
  if (cancel !== undefined) {
    controllers.get(cancel)?.abort();
    return;
  }
  try {
    if (dead) throw new WebAssembly.RuntimeError('unreachable: the module trapped earlier');
    const fn = methods[method];
    if (!fn) throw new Error(`unknown method ${method}`);
    const call = [...(args ?? [])];
    if (abortable || progress) {
      // The call options go after the method's own arguments (methods.js `arity`).
      const options = {};
      if (abortable) {
        const controller = new AbortController();
        controllers.set(id, controller);
        options.signal = controller.signal;
      }
      if (progress) options.onProgress = (p) => self.postMessage({ id, callProgress: p });
      const arity = method === 'load' ? 1 : (METHODS[method]?.arity ?? call.length);
      call.length = arity;
      call.push(options);
    }
    const result = await fn(...call);
    self.postMessage({ id, result });
  } catch (e) {
    // The kind travels with the message: the client decides on kinds, never on text.
    const kind = e instanceof WebAssembly.RuntimeError ? 'trap'
      : e?.name === 'AbortError' ? 'aborted'
      : typeof e?.kind === 'string' ? e.kind : 'error';
    self.postMessage({ id, error: e instanceof Error ? e.message : String(e), kind });
  } finally {
    controllers.delete(id);
  }
}

// Only inside a worker: imported on the main thread, this module does nothing (it would
// otherwise take over the page's message handler).
const scope = /** @type {any} */ (globalThis).WorkerGlobalScope;
if (scope !== undefined && self instanceof scope) {
  self.onmessage = ({ data }) => answer(data);
}
