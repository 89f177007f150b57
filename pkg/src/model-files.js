// Fetching a model directory: manifest.json, then each file it lists, with download progress,
// sha256 verification and the Cache API so that a reload does not download again.
// The only network requests this package makes are these (and its own wasm file).

import { initWasm } from './wasm.js';

const CACHE_NAME = 'tkre-model-files-v1';
const REQUIRED = ['config.json', 'model.safetensors', 'tokenizer.json'];
// Loaded when the manifest lists them: the learned mention proposer of `extract`.
const OPTIONAL = ['mention_head.json'];

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(bytes) {
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

async function openCache() {
  try {
    return typeof caches === 'undefined' ? null : await caches.open(CACHE_NAME);
  } catch {
    return null; // e.g. opaque origins: work without a cache
  }
}

// Reads a response, refusing more than the manifest's size: an endless or oversized response
// must not fill the tab's memory.
async function readWithProgress(response, expectedBytes, onChunk, url) {
  const tooLarge = (n) =>
    new Error(`model file ${url} is larger than the manifest says (${n} > ${expectedBytes} bytes); refusing it`);
  const declared = Number(response.headers?.get?.('content-length'));
  if (Number.isFinite(declared) && declared > expectedBytes && !response.headers.get('content-encoding')) {
    throw tooLarge(declared);
  }
  if (!response.body || !response.body.getReader) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > expectedBytes) throw tooLarge(bytes.length);
    onChunk(bytes.length);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    received += value.length;
    if (received > expectedBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(received);
    }
    chunks.push(value);
    onChunk(value.length);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * Where each file of a model is, as absolute URLs: `model` is a directory URL (a string or a
 * URL, relative ones resolved against the page), or a map from file name to URL such as the
 * default model package's `modelFiles`. Resolve it on the page before handing it to a worker,
 * whose own address would otherwise be the base.
 * @param {string | URL | Record<string, string | URL>} model
 * @returns {string | Record<string, string>} the same kind of location, absolute
 */
export function resolveModelLocation(model) {
  const page = globalThis.location?.href;
  if (model && typeof model === 'object' && !(model instanceof URL)) {
    return Object.fromEntries(Object.entries(model).map(([name, url]) => [name, new URL(String(url), page).href]));
  }
  const text = String(model);
  return new URL(text.endsWith('/') ? text : `${text}/`, page).href;
}

function fileUrlOf(model) {
  const location = resolveModelLocation(model);
  if (typeof location === 'string') return (name) => new URL(name, location).href;
  return (name) => {
    if (!location[name]) throw new Error(`the model's file map has no ${name}; it needs manifest.json and the files it lists`);
    return location[name];
  };
}

/** The default model (the package tkre-web-model-default), as its file map. */
export async function defaultModelFiles() {
  return (await import('tkre-web-model-default')).modelFiles;
}

/**
 * Loads and verifies a model.
 * @param {string | URL | Record<string, string | URL>} model a directory URL holding
 *   manifest.json and the files it lists, or a map from file name to URL
 * @param {{onProgress?: (p: import('./index.js').LoadProgress) => void, useCache?: boolean, signal?: AbortSignal}} options
 * @returns {Promise<{manifest: object | null, files: Record<string, Uint8Array>, fromCache: boolean, verified: boolean}>}
 *   `manifest` is null, and `verified` false, for a plain Hugging Face directory (no manifest)
 */
export async function fetchModelFiles(model, { onProgress, useCache = true, signal } = {}) {
  const fileUrl = fileUrlOf(model);
  const manifestUrl = fileUrl('manifest.json');
  let manifestResponse;
  try {
    manifestResponse = await fetch(manifestUrl, { cache: 'no-cache', signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new Error(`model manifest ${manifestUrl} could not be fetched: ${e.message}`);
  }
  if (manifestResponse.status === 404) return fetchUnverified(fileUrl, manifestUrl, { onProgress, signal });
  if (!manifestResponse.ok) {
    throw new Error(`model manifest ${manifestUrl}: HTTP ${manifestResponse.status}; is the model directory served there?`);
  }
  // One parser for every reader: tkre::checkpoint::Manifest, in the wasm module.
  const { wasm } = await initWasm();
  const manifest = wasm.parseManifest(await manifestResponse.text(), manifestUrl);
  const names = [...REQUIRED, ...OPTIONAL.filter((name) => manifest.files[name])];
  const total = names.reduce((sum, name) => sum + manifest.files[name].bytes, 0);
  let loaded = 0;
  let fromCache = true;
  const cache = useCache ? await openCache() : null;
  /** @type {Record<string, Uint8Array>} */
  const files = {};
  for (const name of names) {
    const entry = manifest.files[name];
    const url = fileUrl(name);
    // Keyed by content hash, so a new model version never reads an old cached file.
    const cacheKey = `${url}?sha256=${entry.sha256}`;
    let bytes = null;
    let cached = false;
    if (cache) {
      const hit = await cache.match(cacheKey);
      if (hit) {
        const candidate = new Uint8Array(await hit.arrayBuffer());
        if ((await sha256Hex(candidate)) === entry.sha256) {
          bytes = candidate;
          cached = true;
        } else {
          await cache.delete(cacheKey);
        }
      }
    }
    if (!bytes) {
      fromCache = false;
      const response = await fetchFile(url, signal);
      bytes = await readWithProgress(
        response,
        entry.bytes,
        (n) => {
          loaded += n;
          onProgress?.({ status: 'download', stage: 'model', loaded, total, file: name, cached: false });
        },
        url,
      );
      loaded -= bytes.length; // re-added below, once, whatever the chunks said
      const digest = await sha256Hex(bytes);
      if (digest !== entry.sha256) {
        throw new Error(
          `model file ${url} is corrupt or incomplete: sha256 ${digest} (${bytes.length} bytes), ` +
            `manifest says ${entry.sha256} (${entry.bytes} bytes)`,
        );
      }
      if (cache) {
        try {
          await cache.put(cacheKey, new Response(bytes));
          await evictOtherVersions(cache, url, cacheKey);
        } catch {
          // quota exceeded: keep working without caching
        }
      }
    }
    loaded += bytes.length;
    onProgress?.({ status: 'done', stage: 'model', loaded, total, file: name, cached });
    files[name] = bytes;
  }
  return { manifest, files, fromCache, verified: true };
}

async function fetchFile(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new Error(`model file ${url} could not be fetched: ${e.message}`);
  }
  if (!response.ok) {
    throw new Error(`model file ${url}: HTTP ${response.status} (missing from the model directory?)`);
  }
  return response;
}

// Without a manifest nothing bounds a file's size; this is above any BERT-base checkpoint.
const UNVERIFIED_MAX_BYTES = 2 ** 31;

/**
 * A directory without manifest.json (a Hugging Face layout: config.json, model.safetensors,
 * tokenizer.json): the files load with a warning, unchecked and not cached, since nothing says
 * what they should be.
 */
async function fetchUnverified(fileUrl, manifestUrl, { onProgress, signal }) {
  console.warn(
    `tkre-web: ${manifestUrl} is missing, so the model's files load unverified (no sha256 check, ` +
      'no cache, the default settings). `tkre export` makes a directory with a manifest.',
  );
  /** @type {Record<string, Uint8Array>} */
  const files = {};
  let loaded = 0;
  for (const name of REQUIRED) {
    const url = fileUrl(name);
    const response = await fetchFile(url, signal);
    files[name] = await readWithProgress(
      response,
      UNVERIFIED_MAX_BYTES,
      (n) => onProgress?.({ status: 'download', stage: 'model', loaded: (loaded += n), total: 0, file: name, cached: false }),
      url,
    );
    onProgress?.({ status: 'done', stage: 'model', loaded, total: 0, file: name, cached: false });
  }
  return { manifest: null, files, fromCache: false, verified: false };
}

/** Deletes the cached copies of `url` other than `keep` (older versions of a model file). */
async function evictOtherVersions(cache, url, keep) {
  for (const request of await cache.keys()) {
    const cached = request.url;
    if (cached !== keep && cached.startsWith(`${url}?sha256=`)) await cache.delete(request);
  }
}

/** Deletes every cached model file of this package. */
export async function clearModelCache() {
  if (typeof caches !== 'undefined') await caches.delete(CACHE_NAME);
}
