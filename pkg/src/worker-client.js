// The worker wrapper: the same API as RelationExtractor, with the model in a Web Worker so
// that encoding never freezes the page.

export class WorkerExtractor {
  #worker;
  #pending = new Map();
  #nextId = 1;
  #onProgress = null;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      if (data.progress) {
        this.#onProgress?.(data.progress);
        return;
      }
      const pending = this.#pending.get(data.id);
      if (!pending) return;
      this.#pending.delete(data.id);
      if ('error' in data) pending.reject(new Error(data.error));
      else pending.resolve(data.result);
    };
    worker.onerror = (event) => {
      const error = new Error(`worker failed: ${event.message ?? 'unknown error'}`);
      for (const { reject } of this.#pending.values()) reject(error);
      this.#pending.clear();
    };
  }

  #call(method, ...args) {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args });
    });
  }

  async load({ onProgress, ...options }) {
    this.#onProgress = onProgress ?? null;
    const info = await this.#call('load', options);
    Object.assign(this, info);
    return info;
  }

  addExamples(relation, examples) {
    return this.#call('addExamples', relation, Array.isArray(examples) ? examples : [examples]);
  }
  removeExample(relation, index) {
    return this.#call('removeExample', relation, index);
  }
  removeRelation(relation) {
    return this.#call('removeRelation', relation);
  }
  setNoneThreshold(threshold) {
    return this.#call('setNoneThreshold', threshold ?? null);
  }
  relations() {
    return this.#call('relations');
  }
  classify(queries) {
    return this.#call('classify', queries);
  }
  saveSupportSet() {
    return this.#call('saveSupportSet');
  }
  loadSupportSet(json) {
    return this.#call('loadSupportSet', typeof json === 'string' ? json : JSON.stringify(json));
  }
  async dispose() {
    try {
      await this.#call('dispose');
    } finally {
      this.#worker.terminate();
    }
  }
}

/**
 * Starts a worker and loads a model in it.
 * @param {import('./index.js').LoadOptions} options
 */
export async function createWorkerExtractor(options) {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  const extractor = new WorkerExtractor(worker);
  try {
    await extractor.load(options);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return extractor;
}
