// A thread of the CPU engine (the threaded build only): instantiates the module the page
// compiled on its shared memory, says so, and then works in the engine's pool for good
// (`joinThreadPool` never returns; the worker sleeps in `memory.atomic.wait32` between
// products). Started by wasm.js.

import { initSync, joinThreadPool } from '../wasm-threads/tkre.js';

self.onmessage = ({ data: { module, memory } }) => {
  self.onmessage = null;
  try {
    initSync({ module, memory });
  } catch (error) {
    self.postMessage({ error: String(error?.message ?? error) });
    return;
  }
  self.postMessage({ joined: true });
  joinThreadPool();
};
