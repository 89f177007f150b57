// The package's API, written once. RelationExtractor (extractor.js) implements each method on
// the wasm module; the worker (worker.js) answers each by name with its RelationExtractor; and
// WorkerExtractor (worker-client.js) gets one forwarding method per entry. `edits`: the call
// changes the support set (the worker client keeps a copy of it, to restore after recovery).
// `args`: how arguments are normalised, once, by both RelationExtractor and WorkerExtractor
// (before they travel: structured clone keeps only data). `arity`: a long call takes its
// arguments and then one more, optional, `{signal}` (an AbortSignal).
export const METHODS = Object.freeze({
  // The options are passed on whole, so that a misspelt field is reported rather than dropped.
  addRelation: { edits: true, arity: 2, args: (key, options = {}) => [key, { ...options, ...oneOrMany(options, 'examples') }] },
  setRelationText: { edits: true, args: (key, text) => [key, text ?? null] },
  addExamples: { edits: true, arity: 2, args: (relation, examples) => [relation, Array.isArray(examples) ? examples : [examples]] },
  removeExample: { edits: true },
  removeRelation: { edits: true },
  setNoneThreshold: { edits: true, args: (threshold) => [threshold ?? null] },
  relations: {},
  classify: { arity: 1 },
  embed: { arity: 1 },
  // A document's relations; its call options may also hold `onProgress` (sentences done).
  extract: { arity: 2, progress: true, args: (text, options) => [text, options ?? {}] },
  saveSupportSet: {},
  loadSupportSet: { edits: true, arity: 1, args: (json) => [typeof json === 'string' ? json : JSON.stringify(json)] },
  memoryUsage: {},
});

function oneOrMany(options, field) {
  const value = options?.[field];
  return value != null && !Array.isArray(value) ? { [field]: [value] } : {};
}

/**
 * The arguments of `method` as they travel, and the call's options (if it takes them):
 * `{args, signal, onProgress}`.
 * @returns {{args: any[], signal?: AbortSignal, onProgress?: (progress: any) => void}}
 */
export function normalizedArgs(method, given) {
  const { args: normalise, arity, progress } = /** @type {{args?: Function, arity?: number, progress?: boolean}} */ (METHODS[method]);
  /** @type {{signal?: AbortSignal, onProgress?: (progress: any) => void}} */
  let call = {};
  let args = given;
  if (arity !== undefined && given.length > arity) {
    call = callOptions(method, given[arity], progress ? ['signal', 'onProgress'] : ['signal']);
    args = given.slice(0, arity);
  }
  return { args: normalise ? normalise(...args) : args, ...call };
}

/** A call's options (`{signal}`, and `onProgress` where `allowed`), checked. */
export function callOptions(what, options, allowed = ['signal']) {
  if (options == null) return {};
  const extra = typeof options === 'object' ? Object.keys(options).filter((k) => !allowed.includes(k)) : [];
  if (typeof options !== 'object' || extra.length > 0) {
    const takes = allowed.map((k) => (k === 'signal' ? 'signal: AbortSignal' : `${k}: function`)).join(', ');
    throw inputError(`${what}: its last argument takes {${takes}}${extra.length ? `; unknown field ${extra[0]}` : ''}`);
  }
  const { signal, onProgress } = options;
  if (signal != null && !isAbortSignal(signal)) throw inputError(`${what}: signal must be an AbortSignal`);
  if (onProgress != null && typeof onProgress !== 'function') throw inputError(`${what}: onProgress must be a function`);
  return { signal: signal ?? undefined, onProgress: onProgress ?? undefined };
}

/** The `signal` of a call's options (`{signal}`), checked. */
export function callSignal(what, options) {
  return callOptions(what, options).signal;
}

function isAbortSignal(value) {
  return typeof AbortSignal !== 'undefined' && value instanceof AbortSignal;
}

/** An Error with a `kind` (the package's errors all have one). */
export function inputError(message, kind = 'input') {
  return Object.assign(new Error(message), { kind });
}

/** The error of an aborted call: the signal's reason when it is an Error, else an AbortError. */
export function abortError(signal) {
  const reason = signal?.reason;
  if (reason instanceof Error) return reason;
  return new DOMException('the call was aborted', 'AbortError');
}
