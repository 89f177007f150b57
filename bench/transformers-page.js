// transformers.js (ONNX Runtime Web) inside a benchmark page, fully offline: the model files
// from /onnx-models/ and ONNX Runtime's wasm from /transformers/ (scripts/dev/serve.py serves
// both). Imported in the page by bench/compare.js and bench/gpu-profile.js, so that both
// measure the same configuration.

/** The transformers.js module with remote models, the browser cache and threads turned off. */
export async function loadTransformers() {
  const transformers = await import('/transformers/transformers.min.js');
  const { env } = transformers;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/onnx-models/';
  env.useBrowserCache = false;
  env.backends.onnx.wasm.wasmPaths = '/transformers/';
  // One thread, as our CPU path (the page is not cross-origin isolated either way).
  env.backends.onnx.wasm.numThreads = 1;
  return transformers;
}

/**
 * all-MiniLM-L6-v2 sentence embeddings (mean pooled, normalised) on `backend` ("cpu" runs
 * ONNX Runtime's wasm, "webgpu" its WebGPU backend) at `precision` ("fp32", or anything else
 * for the q8 model). Returns `{ embed(texts) -> number[][], dispose(), threads }`.
 */
export async function createTransformersEmbedder({ backend, precision }) {
  const { env, pipeline } = await loadTransformers();
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
