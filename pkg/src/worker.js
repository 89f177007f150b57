// Web Worker side of the worker wrapper: owns one RelationExtractor and answers messages
// {id, method, args} with {id, result} or {id, error}.

import { createExtractor } from './extractor.js';
import { METHODS } from './methods.js';

let extractor = null;

const methods = {
  async load(options) {
    await extractor?.dispose();
    extractor = await createExtractor({
      ...options,
      onProgress: (p) => self.postMessage({ progress: p }),
      onBackendChange: (info) => self.postMessage({ backendChanged: info }),
    });
    return { backend: extractor.backend, backendReason: extractor.backendReason, manifest: extractor.manifest, loadInfo: extractor.loadInfo };
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

self.onmessage = async ({ data: { id, method, args } }) => {
  try {
    if (dead) throw new WebAssembly.RuntimeError('unreachable: the module trapped earlier');
    const fn = methods[method];
    if (!fn) throw new Error(`unknown method ${method}`);
    const result = await fn(...(args ?? []));
    self.postMessage({ id, result });
  } catch (e) {
    // The kind travels with the message: the client decides on kinds, never on text.
    const kind = e instanceof WebAssembly.RuntimeError ? 'trap' : typeof e?.kind === 'string' ? e.kind : 'error';
    self.postMessage({ id, error: e instanceof Error ? e.message : String(e), kind });
  }
};
