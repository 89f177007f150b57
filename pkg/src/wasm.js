// The wasm module, initialised once, with download progress: the threaded build (wasm-threads/:
// the CPU engine's products split over Web Workers that share the module's memory) where the
// page is cross-origin isolated and more than one thread is wanted, else the single-thread
// build (wasm/). Both have the same exports; results are the same bit for bit.

/** The exports the package uses, the same in both builds (their glue differs in its init).
 *  @typedef {Pick<typeof import('../wasm/tkre.js'), 'Extractor' | 'engineNames' | 'parseManifest' | 'splitSentences'>} WasmApi */
/** @typedef {{wasm: WasmApi, memory: WebAssembly.Memory, threads: number, threadsReason: string}} LoadedWasm */

/** @type {Promise<LoadedWasm> | null} */
let loading = null;

// Workers beyond this bring little on a 30-token query (each product is split in panels of 8
// columns; syncing more threads per product costs more than it saves).
const MAX_THREADS = 8;
// How long the workers may take to start before the extractor goes on without the late ones.
const WORKER_START_MS = 10_000;

/**
 * Initialises the wasm module once; later calls return the same promise. `onProgress` gets
 * `{status: 'download' | 'done', stage: 'wasm', file, loaded, total}` while it downloads
 * (`total` 0 when the server does not say, or compresses it). `threads`: 'auto' (default: one
 * per core, at most 8) or a number; more than one needs a cross-origin isolated page.
 * @param {string | URL} [wasmUrl]
 * @param {(info: object) => void} [onProgress]
 * @param {{threads?: number | 'auto', threadsWasmUrl?: string | URL}} [options]
 * @returns {Promise<LoadedWasm>}
 */
export function initWasm(wasmUrl, onProgress, options = {}) {
  // A failed load is not kept: the next call (another wasmUrl, the network back) tries again.
  loading ??= load(wasmUrl, onProgress, options).catch((error) => {
    loading = null;
    throw error;
  });
  return loading;
}

/** @param {string | URL | undefined} wasmUrl @param {((info: object) => void) | undefined} onProgress @param {{threads?: number | 'auto', threadsWasmUrl?: string | URL}} options */
async function load(wasmUrl, onProgress, { threads = 'auto', threadsWasmUrl } = {}) {
  const { wanted, reason } = threadsWanted(threads);
  if (wanted > 1) {
    try {
      return await loadThreaded(wanted, threadsWasmUrl, onProgress);
    } catch (error) {
      // The single-thread build still works: say why the threads did not.
      const single = await loadSingle(wasmUrl, onProgress);
      return { ...single, threadsReason: `1 thread: the threaded build did not load (${error.message})` };
    }
  }
  return { ...(await loadSingle(wasmUrl, onProgress)), threadsReason: reason };
}

/** @param {number | 'auto'} threads */
function threadsWanted(threads) {
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1)) {
    throw new Error(`createExtractor: threads must be 'auto' or a whole number from 1, not ${JSON.stringify(threads)}`);
  }
  if (threads === 1) return { wanted: 1, reason: '1 thread: asked for one' };
  if (!globalThis.crossOriginIsolated) {
    return {
      wanted: 1,
      reason: '1 thread: the page is not cross-origin isolated (serve it with the headers ' +
        'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp for threads)',
    };
  }
  const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
  const wanted = threads === 'auto' ? Math.min(cores, MAX_THREADS) : threads;
  return { wanted, reason: wanted > 1 ? '' : `1 thread: the browser reports ${cores} core` };
}

/** @param {string | URL | undefined} wasmUrl @param {((info: object) => void) | undefined} onProgress */
async function loadSingle(wasmUrl, onProgress) {
  const wasm = await import('../wasm/tkre.js');
  const url = wasmUrl ?? new URL('../wasm/tkre_bg.wasm', import.meta.url);
  const exports = await startModule(wasm, 'wasm/tkre.js', fetchWithProgress(url, onProgress), url);
  return { wasm, memory: exports.memory, threads: 1 };
}

/**
 * Instantiates `source` (a module, or the response of its fetch) with the glue `wasm` and
 * checks that the two come from one build. A module of another build either fails to link or
 * links and then reads strings back as garbage; one call shows the second.
 * @param {WasmApi & {default: (init: {module_or_path: any}) => Promise<{memory: WebAssembly.Memory}>}} wasm
 *   the glue module @param {string} glue its file, for the message
 * @param {Promise<Response> | WebAssembly.Module} source @param {string | URL} url where the module came from
 */
async function startModule(wasm, glue, source, url) {
  const notThisBuild = (why) => new Error(`createExtractor: the wasm module ${url} is not the one this package's JavaScript glue (${glue}) was built with (${why}); ` +
    'serve the tkre_bg.wasm of the same build and version as the package (wasmUrl)');
  let exports;
  try {
    exports = await wasm.default({ module_or_path: source });
  } catch (error) {
    if (!(error instanceof WebAssembly.LinkError)) throw error;
    throw notThisBuild(error.message);
  }
  let names;
  try {
    names = wasm.engineNames();
  } catch (error) {
    throw notThisBuild(`engineNames() failed: ${error.message}`);
  }
  const valid = Array.isArray(names) && names.length > 0 && names.every((n) => typeof n === 'string' && /^[a-z][a-z0-9-]*$/.test(n));
  if (!valid) throw notThisBuild(`its engine names read back as ${JSON.stringify(names).slice(0, 80)}`);
  return exports;
}

/** @param {number} wanted @param {string | URL | undefined} threadsWasmUrl @param {((info: object) => void) | undefined} onProgress */
async function loadThreaded(wanted, threadsWasmUrl, onProgress) {
  const wasm = await import('../wasm-threads/tkre.js');
  // Compiled here so that the workers can instantiate the same module on the same memory.
  const url = threadsWasmUrl ?? new URL('../wasm-threads/tkre_bg.wasm', import.meta.url);
  const module = await WebAssembly.compileStreaming(fetchWithProgress(url, onProgress));
  const exports = await startModule(wasm, 'wasm-threads/tkre.js', module, url);
  wasm.threadPoolSize(); // creates the pool on this thread, before any worker looks for it
  const started = await startWorkers(module, exports.memory, wanted - 1);
  // A worker reports before it enters the pool: give the last ones a moment to be counted.
  for (let wait = 0; wait < 100 && wasm.threadPoolSize() < 1 + started.joined; wait++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const threads = wasm.threadPoolSize();
  const short = started.failed ? `; ${started.failed}` : '';
  return { wasm, memory: exports.memory, threads, threadsReason: `${threads} thread${threads > 1 ? 's' : ''}: cross-origin isolated, ${wanted} wanted${short}` };
}

/**
 * Starts `count` Web Workers that join the CPU engine's pool, and waits until they have (or
 * until WORKER_START_MS); the pool works with however many joined.
 * @param {WebAssembly.Module} module @param {WebAssembly.Memory} memory @param {number} count
 */
async function startWorkers(module, memory, count) {
  const joins = [];
  let failed = '';
  let joined = 0;
  for (let i = 0; i < count; i++) {
    let worker;
    try {
      worker = spawnThreadWorker(`tkre-cpu-${i + 1}`);
    } catch (error) {
      failed = `a worker could not start (${error.message})`;
      break;
    }
    joins.push(new Promise((resolve) => {
      worker.onmessage = ({ data }) => {
        if (data?.error) failed = `a worker failed: ${data.error}`;
        else joined++;
        resolve();
      };
      worker.onerror = (event) => {
        failed = `a worker failed: ${event.message ?? 'script error'}`;
        resolve();
      };
    }));
    worker.postMessage({ module, memory });
  }
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), WORKER_START_MS));
  if ((await Promise.race([Promise.all(joins), timeout])) === 'timeout') failed ||= 'not every worker started in time';
  return { failed, joined };
}

/** @param {string} name */
function spawnThreadWorker(name) {
  try {
    // Written out in full: bundlers (Vite, webpack) find the worker by this exact form.
    return new Worker(new URL('./thread-worker.js', import.meta.url), { type: 'module', name });
  } catch (e) {
    if (e?.name !== 'SecurityError') throw e;
    // The package is served from another origin (a CDN): a same-origin module that imports it.
    const script = import.meta.url.replace(/[^/]*$/, 'thread-worker.js');
    const source = new Blob([`import ${JSON.stringify(script)};`], { type: 'text/javascript' });
    return new Worker(URL.createObjectURL(source), { type: 'module', name });
  }
}

/** @param {string | URL} url @param {((info: object) => void) | undefined} onProgress */
async function fetchWithProgress(url, onProgress) {
  const response = await fetch(url);
  const file = 'tkre_bg.wasm';
  if (!response.ok) throw new Error(`failed to fetch ${url}: ${response.status} ${response.statusText}`);
  if (!onProgress || !response.body) return response;
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
  // Compiled while it streams in (WebAssembly.compileStreaming needs this content type).
  return new Response(counted, { status: response.status, headers: { 'Content-Type': 'application/wasm' } });
}
