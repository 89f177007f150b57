// The browser benchmark (bench/browser.js) in a CI-sized run. Not a speed check (speed is the
// benchmark's own report): it checks that the benchmark still runs end to end and that each
// row ran on the backend it names. burn's rows need the comparison build
// (scripts/dev/build-wasm.sh --compare, 40 minutes, not part of the test build); where it is
// present they run too, which is how a page loading the wrong module is caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMPARE_BUILD, runBenchmark } from './harness.js';

const runBench = (backends) =>
  runBenchmark('bench/browser.js', 'TKRE_BENCH', { BACKENDS: backends.join(','), QUERIES: '2', BATCH: '4' });

function checkRows({ report, table }, backends) {
  assert.deepEqual(report.rows.map((r) => r.backend), backends, 'each row on the backend it asked for');
  for (const r of report.rows) {
    for (const key of ['load_cold_ms', 'load_cached_ms', 'first_result_ms', 'query_p50_ms', 'query_p95_ms', 'batch_sentences_per_s']) {
      assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${r.backend}: ${key} is ${r[key]}`);
    }
    assert.equal(r.cached_load_hit, true, `${r.backend}: the second load comes from the Cache API`);
    assert.match(table, new RegExp(`^\\| ${r.backend} \\|`, 'm'), `the table has a ${r.backend} row`);
  }
  assert.match(table, /\| batch 4 sent\/s \|/, 'the table names the batch size it ran');
}

test('bench/browser.js on the CPU engine: a small run writes its rows and table', () => {
  checkRows(runBench(['cpu']), ['cpu']);
});

test('bench/browser.js burn row: the comparison page loads the comparison build', { skip: !COMPARE_BUILD && 'no comparison build here (bash scripts/dev/build-wasm.sh --compare)' }, () => {
  checkRows(runBench(['burn-ndarray']), ['burn-ndarray']);
});
