// The package's API, written once. RelationExtractor (extractor.js) implements each method on
// the wasm module; the worker (worker.js) answers each by name with its RelationExtractor; and
// WorkerExtractor (worker-client.js) gets one forwarding method per entry. `edits`: the call
// changes the support set (the worker client keeps a copy of it, to restore after recovery).
// `args`: how arguments are normalised, once, by both RelationExtractor and WorkerExtractor
// (before they travel: structured clone keeps only data).
export const METHODS = Object.freeze({
  // The options are passed on whole, so that a misspelt field is reported rather than dropped.
  addRelation: { edits: true, args: (key, options = {}) => [key, { ...options, ...oneOrMany(options, 'examples') }] },
  setRelationText: { edits: true, args: (key, text) => [key, text ?? null] },
  addExamples: { edits: true, args: (relation, examples) => [relation, Array.isArray(examples) ? examples : [examples]] },
  removeExample: { edits: true },
  removeRelation: { edits: true },
  setNoneThreshold: { edits: true, args: (threshold) => [threshold ?? null] },
  relations: {},
  classify: {},
  embed: {},
  saveSupportSet: {},
  loadSupportSet: { edits: true, args: (json) => [typeof json === 'string' ? json : JSON.stringify(json)] },
  memoryUsage: {},
});

function oneOrMany(options, field) {
  const value = options?.[field];
  return value != null && !Array.isArray(value) ? { [field]: [value] } : {};
}

/** The arguments of `method` as they travel. */
export function normalizedArgs(method, args) {
  return METHODS[method].args ? METHODS[method].args(...args) : args;
}
