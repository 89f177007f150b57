/** A character range (Unicode code points, end exclusive). */
export interface Span {
  start: number;
  end: number;
}

/** A relation example or query: a marked sentence, or a text with entity offsets. */
export type Example =
  | string // "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2]."
  | {
      text: string;
      head: Span;
      tail: Span;
      /** The head entity's type, e.g. "person" (optional; typed markers). */
      headType?: string;
      tailType?: string;
      /** @deprecated Use `headType`; accepted for one more version. */
      head_type?: string;
      /** @deprecated Use `tailType`; accepted for one more version. */
      tail_type?: string;
    };

/** The last, optional argument of a long call. */
export interface CallOptions {
  /** Aborts the call: it rejects with an AbortError (the signal's reason). Reads (classify,
   *  embed) stop between slices of 32 queries; an edit (addRelation, addExamples,
   *  loadSupportSet) is all or nothing, so it stops only if it has not started. */
  signal?: AbortSignal;
}

/** How `extract` finds entity mentions, and its threshold. */
export interface ExtractOptions {
  /** Your entity list: names, or `{name, aliases}`; matched case-insensitively on word
   *  boundaries. (Also a string of lines: `name<TAB>alias...`.) */
  entities?: (string | { name: string; aliases?: string[] })[] | string;
  /** Mentions you marked (code points of the document); they always count. One may lie
   *  inside another ("soprano" in "English soprano"); two may not cross. */
  mentions?: Span[];
  /** Whether the mention proposer adds mentions (default true). Your support examples'
   *  entities guide which candidates the learned proposer gives. */
  propose?: boolean;
  /** Similarity below which a pair has no relation, in -1..1 (default: the support set's,
   *  else the model's recommended threshold). */
  threshold?: number;
}

/** `extract`'s call options: a signal, and progress after each slice of sentences. */
export interface ExtractCallOptions extends CallOptions {
  onProgress?: (progress: { status: 'extract'; done: number; total: number }) => void;
}

/** An entity mention in a document (code points of the document). */
export interface Mention extends Span {
  text: string;
  /** Marked by you, from your entity list, or proposed. */
  source: 'marked' | 'listed' | 'proposed';
  /** The list entry it matched (listed mentions). */
  entity?: string;
}

/** A relation found between two mentions of one sentence. */
export interface Triple {
  head: { text: string } & Span;
  tail: { text: string } & Span;
  /** The relation's key. */
  relation: string;
  /** Its calibrated probability. */
  score: number;
  /** Its prototype similarity, in [-1, 1]. */
  similarity: number;
  sentence: Span;
}

/** What `extract` found, in document order (mentions by start, then end). Pairs of
 *  overlapping mentions are not classified, and of triples of one relation between nested
 *  mentions only the best-scoring one is kept. */
export interface Extraction {
  sentences: Span[];
  mentions: Mention[];
  triples: Triple[];
}

/** The answer for a query of a batch that could not be read (the other queries are answered). */
export interface QueryError {
  /** What is wrong with it, naming it by its number: "query #2: ...". */
  error: string;
  kind: TkreError['kind'];
}

/** What a relation means, in words; fused with its examples (text alone: zero-shot). */
export interface RelationText {
  /** Display name, e.g. "place of birth" (at most 200 characters). */
  name?: string | null;
  /** e.g. "the most specific known birth location of a person" (at most 2000 characters). */
  description?: string | null;
}

export interface RelationOptions extends RelationText {
  examples?: Example | Example[];
}

export interface RelationSummary {
  key: string;
  /** The display name, or the key when the relation has none. */
  name: string;
  description?: string;
  /** How many examples it has (0 for a text-only relation). */
  examples: number;
}

export interface RelationScore {
  /** The relation's key. */
  relation: string;
  /** Softmax over the relations at the model's calibrated temperature, with "no relation" as
   *  one more class when a threshold is set; with none_probability it sums to 1. */
  probability: number;
  /** Prototype similarity in [-1, 1]. */
  similarity: number;
}

export interface Prediction {
  /** Every relation, best first. */
  ranked: RelationScore[];
  /** True when a threshold is in force and the best similarity is below it. */
  noneOfTheAbove: boolean;
  /** The probability of no relation: 0 without a threshold. With one, "no relation" is one more
   *  class of the softmax, so the relations' probabilities and this one sum to 1. */
  noneProbability: number;
  /** @deprecated Use `noneOfTheAbove`; this name goes in the next version. */
  none_of_the_above: boolean;
}

export interface LoadProgress {
  /** "download": bytes of `file` arrived; "done": `file` is complete (or read from the cache);
   *  "ready": the model is loaded (the last event). */
  status: 'download' | 'done' | 'ready';
  /** "wasm": this package's tkre_bg.wasm (`loaded`/`total` count it; `total` is 0 when the
   *  server compresses it and does not say its size); "model": the model files (`loaded`/`total`
   *  count all of them together). */
  stage: 'wasm' | 'model';
  loaded: number;
  total: number;
  file: string;
  cached: boolean;
}

export interface LoadOptions {
  /** The model: the URL of a model directory (manifest.json, config.json, model.safetensors,
   *  tokenizer.json; relative URLs resolve against the page), or a map from those file names to
   *  URLs. Default: the package tkre-web-model-default (its `modelFiles`). A directory without
   *  manifest.json (a Hugging Face layout: config.json, model.safetensors, tokenizer.json)
   *  loads too, with a console warning: its files are not verified and not cached. */
  modelUrl?: string | URL | Record<string, string | URL>;
  /** The engine: "auto" (WebGPU on a hardware adapter, else CPU: a software fallback adapter
   *  such as SwiftShader is slower than the CPU engine), "webgpu" (any adapter) or "cpu". Default
   *  "auto". Both run a forward pass fused for BERT (WGSL kernels on WebGPU, wasm SIMD128 on
   *  the CPU). The comparison build (scripts/dev/build-wasm.sh --compare) also takes
   *  "burn-ndarray" and "burn-webgpu", burn's own ops. */
  backend?: 'auto' | 'webgpu' | 'cpu' | 'burn-ndarray' | 'burn-webgpu';
  /** CPU threads: "auto" (default: one per core, at most 8) or a number. More than one needs a
   *  cross-origin isolated page (served with `Cross-Origin-Opener-Policy: same-origin` and
   *  `Cross-Origin-Embedder-Policy: require-corp`); it then loads the threaded build
   *  (wasm-threads/) and starts Web Workers that share its memory. Elsewhere the single-thread
   *  build runs, with the same results. `threads`/`threadsReason` say what was chosen. */
  threads?: number | 'auto';
  onProgress?: (progress: LoadProgress) => void;
  /** Called when the extractor changes backend by itself: its WebGPU device was lost and it
   *  moved to the CPU (with the same support set). `backend`/`backendReason` say so too. */
  onBackendChange?: (info: { backend: string; backendReason: string }) => void;
  /** Keep model files in the Cache API so a reload does not download them again. Default true. */
  useCache?: boolean;
  /** Where this package's tkre_bg.wasm is served, if not next to wasm/tkre.js. It must be the
   *  module of the same build: another one (an older version left on a CDN) is refused with an
   *  error that says so, and a later call may try again. */
  wasmUrl?: string | URL;
  /** Where the threaded build's tkre_bg.wasm is served, if not next to wasm-threads/tkre.js
   *  (when it cannot be loaded, the single-thread build runs and `threadsReason` says why). */
  threadsWasmUrl?: string | URL;
  /** Maximum tokens per sentence, [CLS]/[SEP] included. Default 256 (capped by the model). */
  maxLength?: number;
  /** Aborts the load (downloads stop); the promise rejects with an AbortError. */
  signal?: AbortSignal;
  /** createWorkerExtractor only: your own Worker running this package's `tkre-web/worker`
   *  module, or a function that makes one (it also makes the replacement after a fatal error).
   *  Default: the package's worker, through a same-origin blob module when the package is
   *  served from another origin. */
  worker?: Worker | (() => Worker);
}

/** manifest.json of a model directory; the fields of `tkre::checkpoint::Manifest` (a Rust
 *  test checks that the two agree). */
export interface ModelManifest {
  format: 'tkre-model';
  version: number;
  name: string;
  precision: 'fp32' | 'fp16' | 'int8' | 'packed';
  storage?: string;
  markers: 'tkre-punctuation';
  representation: 'markers' | 'entity-mean' | 'entity-mean-sentence' | 'markers-sentence' | 'sentence';
  max_length: number;
  files: Record<string, { sha256: string; bytes: number }>;
  /** Score calibration fitted for this model (`tkre calibrate`): the softmax temperature and
   *  the recommended none-of-the-above threshold, used unless the support set sets its own. */
  calibration?: { temperature: number; none_similarity: number; fitted_on: string };
  card: Record<string, unknown>;
}

/** The methods of both extractors (the package's method table, pkg/src/methods.js; a test
 *  checks that the two agree). */
export interface ExtractorMethods {
  /** Adds a relation with text, examples or both; resolves to its example count. Rejects when
   *  the key exists or the relation has neither examples nor text. */
  addRelation(key: string, options: RelationOptions, call?: CallOptions): Promise<number>;
  /** Replaces a relation's name and description; null clears them (it must keep examples). */
  setRelationText(key: string, text: RelationText | null): Promise<void>;
  /** Adds examples to a relation (created if new); resolves to its example count. */
  addExamples(relation: string, examples: Example | Example[], call?: CallOptions): Promise<number>;
  removeExample(relation: string, index: number): Promise<void>;
  removeRelation(relation: string): Promise<void>;
  /** Similarity below which a query is "none of the above"; null returns to the model's
   *  recommended threshold (its manifest's calibration; none without one); -1 switches it off. */
  setNoneThreshold(threshold: number | null): Promise<void>;
  relations(): Promise<RelationSummary[]>;
  /** Bytes the wasm module's linear memory holds now (it grows, never shrinks). */
  memoryUsage(): Promise<{ wasmBytes: number }>;
  /** One query: its prediction (rejects if the query cannot be read). */
  classify(query: Example, call?: CallOptions): Promise<Prediction>;
  /** A batch: one item per query, in order, a prediction or the query's own error. */
  classify(queries: Example[], call?: CallOptions): Promise<(Prediction | QueryError)[]>;
  /** Relations in a document: sentences, entity mentions, and a triple for every ordered
   *  pair of mentions of a sentence whose answer is a relation (as `tkre extract`). */
  extract(text: string, options?: ExtractOptions, call?: ExtractCallOptions): Promise<Extraction>;
  /** Sentence embeddings: L2-normalised mean of the last hidden states (as `tkre embed`). */
  embed(text: string, call?: CallOptions): Promise<number[]>;
  embed(texts: string[], call?: CallOptions): Promise<number[][]>;
  /** The support set as JSON (the format `tkre classify --support` reads). */
  saveSupportSet(): Promise<string>;
  /** Replaces the support set; resolves to the number of relations. */
  loadSupportSet(json: string | object, call?: CallOptions): Promise<number>;
  /** Frees the model (GPU memory included). The object stays readable (`backend`,
   *  `backendReason`), and every later call rejects with an error saying it was disposed. */
  dispose(): Promise<void>;
}

/** What a loaded extractor reports. */
export interface LoadedModel {
  /** The engine in use. */
  readonly backend: 'webgpu' | 'cpu' | 'burn-ndarray' | 'burn-webgpu';
  readonly backendReason: string;
  /** CPU threads a query computes on: more than one on the CPU backend of a cross-origin
   *  isolated page; 1 on WebGPU. */
  readonly threads: number;
  /** Why that many threads (e.g. the page is not cross-origin isolated). */
  readonly threadsReason: string;
  /** The model's manifest; null for a directory without one (loaded unverified). */
  readonly manifest: ModelManifest | null;
  /** `verified`: every file matched the manifest's sha256 (false without a manifest). */
  readonly loadInfo: { fromCache: boolean; verified: boolean; loadMs: number };
}

/** The model on the calling thread. */
export interface RelationExtractor extends ExtractorMethods, LoadedModel {}
export class RelationExtractor {
  #private;
  private constructor();
}

/** The model in a Web Worker: the same methods, and the page never freezes while it encodes. */
export interface WorkerExtractor extends ExtractorMethods, LoadedModel {}
export class WorkerExtractor {
  #private;
  private constructor();
}

/** Loads a model on the calling thread. */
export function createExtractor(options?: LoadOptions): Promise<RelationExtractor>;
/** Loads a model in a Web Worker; the page never freezes while it encodes. */
export function createWorkerExtractor(options?: LoadOptions): Promise<WorkerExtractor>;
export function initWasm(wasmUrl?: string | URL): Promise<unknown>;
export function fetchModelFiles(
  model: string | URL | Record<string, string | URL>,
  options?: { onProgress?: (p: LoadProgress) => void; useCache?: boolean; signal?: AbortSignal },
): Promise<{ manifest: ModelManifest | null; files: Record<string, Uint8Array>; fromCache: boolean; verified: boolean }>;
export function clearModelCache(): Promise<void>;
export function sha256Hex(bytes: Uint8Array): Promise<string>;

/**
 * Every rejected call rejects with an Error that has a `kind`: "input" (a malformed
 * argument), "instance" (a sentence or its entities), "support-set", "option" (a value out of
 * range), "model", "tokenizer", "json", "device" (the compute device failed), "trap" or
 * "worker-failed" (the worker restarts on the CPU by itself), or "error". Act on the kind; the
 * message may quote your input.
 */
export interface TkreError extends Error {
  kind: 'input' | 'instance' | 'support-set' | 'option' | 'model' | 'tokenizer' | 'json' | 'io' | 'device' | 'internal' | 'trap' | 'worker-failed' | 'disposed' | 'error';
}
