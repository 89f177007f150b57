// tkre-web: few-shot relation extraction in the browser.
export { createExtractor, RelationExtractor, initWasm } from './extractor.js';
export { createWorkerExtractor, WorkerExtractor } from './worker-client.js';
export { fetchModelFiles, clearModelCache, sha256Hex } from './model-files.js';
