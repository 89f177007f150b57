// The comparison benchmark against transformers.js (bench/compare.js) in a CI-sized run: both
// backends, both precision pairs, few sentences. Not a speed check (speed is the benchmark's
// own report, reports/bench-compare.json): it checks that the benchmark still runs offline end
// to end, that both sides compute the same embeddings on the backend asked for (the benchmark
// fails otherwise), and that its JSON and table hold every row with consistent ratios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { THREADS_MISSING, runBenchmark } from './harness.js';

/** Runs bench/compare.js with `settings` (TKRE_COMPARE_* without the prefix); its report. */
const runCompare = (settings) => runBenchmark('bench/compare.js', 'TKRE_COMPARE', settings);

const positive = (x, what) => assert.ok(Number.isFinite(x) && x > 0, `${what} is ${x}`);

function checkRows(report, table, { backends, lengths, batches, threads }) {
  const precisions = ['fp32 vs fp32', 'int8 vs q8'];
  const expected = backends.flatMap((b) => precisions.flatMap((p) => (b === 'cpu' ? threads : [1]).flatMap((n) => lengths.map((l) => `${b}|${p}|${n}|${l}`))));
  assert.deepEqual(report.rows.map((r) => `${r.backend}|${r.precision}|${r.threads}|${r.length}`), expected);
  for (const r of report.rows) {
    const name = `${r.backend} ${r.precision} ${r.length} (${r.threads} threads)`;
    assert.equal(r.tkre.backend, r.backend, name);
    assert.deepEqual(r.offsite_requests, [], name);
    assert.ok(r.min_cosine >= 0.999 && r.min_cosine <= 1.0001, `${name}: min cosine ${r.min_cosine}`);
    for (const side of [r.tkre, r.transformers_js]) {
      for (const key of ['p50_ms', 'p95_ms', 'load_ms', 'first_call_ms', 'bytes', 'peak_renderer_rss_bytes']) {
        positive(side[key], `${name} ${key}`);
      }
      assert.ok(side.p95_ms >= side.p50_ms, name);
      for (const n of batches) positive(side.throughput[n], `${name} batch ${n}`);
    }
    // Equal thread counts: ours and ONNX Runtime Web's numThreads (the page is isolated).
    assert.equal(r.tkre.threads, r.threads, `${name}: this project's threads`);
    assert.equal(r.transformers_js.threads, r.threads, `${name}: transformers.js's threads`);
    // The ratios are this project / transformers.js: time per query, time per sentence.
    assert.ok(Math.abs(r.ratio.p50 - r.tkre.p50_ms / r.transformers_js.p50_ms) < 1e-9, name);
    for (const n of batches) {
      const ratio = r.transformers_js.throughput[n] / r.tkre.throughput[n];
      assert.ok(Math.abs(r.ratio[`batch${n}`] - ratio) < 1e-9, `${name} batch ${n}`);
    }
    // Both sides downloaded a model and a wasm runtime (several MB each), nothing off-site.
    assert.ok(r.tkre.bytes > 10e6 && r.transformers_js.bytes > 10e6, `${name}: bytes ${r.tkre.bytes} / ${r.transformers_js.bytes}`);
    const line = table.split('\n').find((l) => l.startsWith(`| ${r.backend} | ${r.threads} | ${r.precision} | ${r.length} |`));
    assert.ok(line, `table row for ${name}:\n${table}`);
    assert.ok(line.includes(r.ratio.p50.toFixed(2)), `${name}: the table's p50 ratio\n${line}`);
  }
}

test('bench/compare.js on the CPU: FewRel and 128-token sentences, batch 1 and 8, one and two threads', { skip: THREADS_MISSING }, () => {
  const { report, table } = runCompare({ BACKENDS: 'cpu', LENGTHS: 'fewrel,128', QUERIES: '3', BATCHES: '8', REPS: '1', THREADS: '1,2' });
  checkRows(report, table, { backends: ['cpu'], lengths: ['fewrel', '128'], batches: [8], threads: [1, 2] });
});

// transformers.js takes seconds per query on SwiftShader: batch 1 at FewRel length only.
test('bench/compare.js on WebGPU (SwiftShader): FewRel sentences, batch 1', () => {
  const { report, table } = runCompare({ BACKENDS: 'webgpu', LENGTHS: 'fewrel', QUERIES: '2', BATCHES: '' });
  checkRows(report, table, { backends: ['webgpu'], lengths: ['fewrel'], batches: [], threads: [1] });
});
