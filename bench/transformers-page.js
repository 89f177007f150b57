// transformers.js (ONNX Runtime Web) inside a benchmark page, fully offline: the model files
// from /onnx-models/ and ONNX Runtime's wasm from /transformers/ (scripts/dev/serve.py serves
// both). Imported in the page by bench/compare.js and bench/gpu-profile.js, so that both
// measure the same configuration.

/** The transformers.js module with remote models and the browser cache turned off, its wasm
 *  on `threads` threads (ONNX Runtime's numThreads; more than one needs a cross-origin
 *  isolated page, which the demo server's is). */
export async function loadTransformers(threads = 1) {
  const transformers = await import('/transformers/transformers.min.js');
  const { env } = transformers;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/onnx-models/';
  env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = '/transformers/';
  env.backends.onnx.wasm.numThreads = threads;
  return transformers;
}

/**
 * all-MiniLM-L6-v2 sentence embeddings (mean pooled, normalised) on `backend` ("cpu" runs
 * ONNX Runtime's wasm on `threads` threads, "webgpu" its WebGPU backend) at `precision`
 * ("fp32", or anything else for the q8 model). Returns `{ embed(texts) -> number[][],
 * dispose(), threads }`.
 */
export async function createTransformersEmbedder({ backend, precision, threads = 1 }) {
  const { env, pipeline } = await loadTransformers(threads);
  const extractor = await pipeline('feature-extraction', 'all-MiniLM-L6-v2', {
    device: backend === 'cpu' ? 'wasm' : 'webgpu',
    dtype: precision === 'fp32' ? 'fp32' : 'q8',
  });
  return {
    embed: async (texts) => (await extractor(texts, { pooling: 'mean', normalize: true })).tolist(),
    dispose: () => extractor.dispose(),
    threads: env.backends.onnx.wasm.numThreads,
  };
}

/** all-MiniLM-L6-v2's tokenizer (the model's own tokenizer.json). */
export async function loadTokenizer() {
  const { AutoTokenizer } = await loadTransformers();
  return AutoTokenizer.from_pretrained('all-MiniLM-L6-v2');
}
