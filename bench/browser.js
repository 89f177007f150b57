// Browser benchmark (not a test): the package in headless Chromium on WebGPU (SwiftShader
// here) and on the CPU. Prints a table and writes reports/bench-browser.json.
//   node bench/browser.js            (after scripts/dev/build-wasm.sh and, for the burn rows,
//                                     scripts/dev/build-wasm.sh --compare; see docs/benchmarks.md)
import { writeFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, MODEL_DIR, startServer, launchBrowser } from '../tests/browser/harness.js';
import { fewrelSentences } from './sentences.js';

// Fewer queries make the WebGPU-on-SwiftShader row affordable (TKRE_BENCH_QUERIES=5).
const QUERIES = Number(process.env.TKRE_BENCH_QUERIES ?? 20);
const BATCH = Number(process.env.TKRE_BENCH_BATCH ?? 32);

const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function measure(browser, url, backend, sentences) {
  const support = JSON.parse(readFileSync(path.join(ROOT, 'examples/support_set.json'), 'utf8'));
  // One context for both runs, so the second sees the first's Cache API entries.
  const context = await browser.newContext();
  const run = async (cold) => {
    const page = await context.newPage();
    // burn's backends are only in the comparison build (bench/compare-build.html swaps in its
    // glue; its wasm is named by wasmUrl, since the package fetches the module itself).
    const burn = backend.startsWith('burn-') || backend === 'ndarray';
    await page.goto(`${url}bench/${burn ? 'compare-build' : 'browser'}.html`);
    const wasmUrl = burn ? '/pkg/wasm-compare/tkre_bg.wasm' : undefined;
    const result = await page.evaluate(
      async ({ backend, wasmUrl, cold, support, sentences, QUERIES, BATCH }) => {
        const m = await import('/pkg/src/index.js');
        if (cold) await m.clearModelCache();
        const t0 = performance.now();
        // One thread in every row: the comparison build has no threaded variant, and
        // bench/compare.js measures threads.
        const x = await m.createExtractor({ modelUrl: '/models/default/', backend, threads: 1, wasmUrl });
        const loadMs = performance.now() - t0;
        await x.loadSupportSet(support);
        await x.classify(sentences[0]);
        const firstResultMs = performance.now() - t0;
        const latencies = [];
        for (const s of sentences.slice(1, QUERIES + 1)) {
          const q = performance.now();
          await x.classify(s);
          latencies.push(performance.now() - q);
        }
        await x.classify(sentences.slice(0, BATCH)); // warm-up for the batch shape
        const b = performance.now();
        await x.classify(sentences.slice(BATCH, 2 * BATCH));
        const batchMs = performance.now() - b;
        const memory = performance.memory?.usedJSHeapSize ?? null;
        const used = x.backend;
        await x.dispose();
        return { loadMs, firstResultMs, latencies, batchMs, jsHeapBytes: memory, used, fromCache: x.loadInfo.fromCache };
      },
      { backend, wasmUrl, cold, support, sentences, QUERIES, BATCH },
    );
    await page.close();
    return result;
  };
  const cold = await run(true);
  const cached = await run(false);
  await context.close();
  return {
    backend: cold.used,
    load_cold_ms: cold.loadMs,
    load_cached_ms: cached.loadMs,
    cached_load_hit: cached.fromCache,
    first_result_ms: cold.firstResultMs,
    query_p50_ms: percentile(cached.latencies, 50),
    query_p95_ms: percentile(cached.latencies, 95),
    batch: BATCH,
    queries: QUERIES,
    batch_sentences_per_s: (BATCH / cached.batchMs) * 1000,
    js_heap_bytes: cached.jsHeapBytes,
  };
}

const sentences = fewrelSentences(2 * BATCH + QUERIES + 1);
const server = await startServer();
const browser = await launchBrowser();
const rows = [];
try {
  const backends = (process.env.TKRE_BENCH_BACKENDS ?? 'cpu,burn-ndarray,webgpu').split(',');
  for (const backend of backends) {
    rows.push(await measure(browser, server.url, backend, sentences));
    console.error(JSON.stringify(rows.at(-1)));
  }
} finally {
  await browser.close();
  server.stop();
}
const manifest = JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8'));
const report = {
  date: new Date().toISOString().slice(0, 10),
  browser: 'Debian chromium 156, headless, WebGPU on SwiftShader (no GPU)',
  wasm_bytes: statSync(path.join(ROOT, 'pkg/wasm/tkre_bg.wasm')).size,
  model_bytes: Object.values(manifest.files).reduce((s, f) => s + f.bytes, 0),
  model_precision: manifest.precision,
  model_sha256: manifest.files['model.safetensors'].sha256,
  rows,
};
// TKRE_BENCH_OUT keeps a partial run (e.g. the WebGPU row alone) from replacing the report.
writeFileSync(process.env.TKRE_BENCH_OUT ?? path.join(ROOT, 'reports/bench-browser.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`wasm ${report.wasm_bytes} B, model ${report.model_bytes} B (${report.model_precision}); ${report.browser}`);
console.log(`| backend | load cold ms | load cached ms | first result ms | query p50 ms | query p95 ms | batch ${BATCH} sent/s |`);
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.backend} | ${r.load_cold_ms.toFixed(0)} | ${r.load_cached_ms.toFixed(0)} | ${r.first_result_ms.toFixed(0)} | ${r.query_p50_ms.toFixed(1)} | ${r.query_p95_ms.toFixed(1)} | ${r.batch_sentences_per_s.toFixed(1)} |`);
}
