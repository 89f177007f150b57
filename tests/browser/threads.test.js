// The CPU engine on wasm threads: a cross-origin isolated page loads the threaded build and
// splits each product over Web Workers; a page without isolation (or asking for one thread)
// runs the single-thread build. Both must give the same numbers bit for bit, on the page and
// in the worker wrapper, and say how many threads they use and why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoServerAndBrowser, THREADS_MISSING } from './harness.js';

const shared = demoServerAndBrowser();

const TEXTS = [
  'Marie Curie was born in Warsaw.',
  'ok',
  Array.from({ length: 9 }, (_, i) => `Clause ${i} says that the Vltava flows through Prague.`).join(' '),
  'The quick brown fox jumps over the lazy dog.',
];
const QUERIES = ['[E1]Einstein[/E1] was born in [E2]Ulm[/E2].', '[E1]Tim Cook[/E1] runs [E2]Apple[/E2].'];

/** Loads an extractor on a fresh page (`query` on the page's URL) and reads its numbers. */
async function runOn(query, options = {}, wrapper = 'createExtractor') {
  const page = await shared.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Not the demo page: it would load the wasm first, with its own options.
  await page.goto(`${shared.server.url}bench/browser.html${query}`);
  const result = await page.evaluate(async ({ texts, queries, options, wrapper }) => {
    const m = await import('/pkg/src/index.js');
    const x = await m[wrapper]({ modelUrl: '/models/default/', backend: 'cpu', ...options });
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    await x.addExamples('works for', ['[E1]Satya Nadella[/E1] leads [E2]Microsoft[/E2].']);
    const vectors = await x.embed(texts);
    const predictions = await x.classify(queries);
    const out = {
      isolated: globalThis.crossOriginIsolated,
      cores: navigator.hardwareConcurrency,
      threads: x.threads,
      threadsReason: x.threadsReason,
      backend: x.backend,
      // Exact bits: a float's JSON text is its shortest round-trip form.
      vectors: JSON.stringify(vectors),
      predictions: JSON.stringify(predictions),
    };
    await x.dispose();
    return out;
  }, { texts: TEXTS, queries: QUERIES, options, wrapper });
  await page.close();
  assert.deepEqual(errors, []);
  return result;
}

test('an isolated page computes on several threads and gets the single-thread bits', { skip: THREADS_MISSING }, async () => {
  const threaded = await runOn('');
  const single = await runOn('?isolation=off');
  assert.equal(threaded.isolated, true, 'the demo server sends COOP/COEP');
  assert.equal(single.isolated, false);
  assert.equal(single.threads, 1);
  assert.match(single.threadsReason, /not cross-origin isolated.*Cross-Origin-Opener-Policy/);
  const expected = Math.min(threaded.cores, 8);
  assert.equal(threaded.threads, expected, threaded.threadsReason);
  if (expected > 1) assert.match(threaded.threadsReason, /cross-origin isolated/);
  assert.equal(threaded.vectors, single.vectors, 'sentence embeddings differ between thread counts');
  assert.equal(threaded.predictions, single.predictions, 'predictions differ between thread counts');
});

test('threads: 1 keeps an isolated page on one thread, and a bad count is refused', { skip: THREADS_MISSING }, async () => {
  const one = await runOn('', { threads: 1 });
  assert.equal(one.isolated, true);
  assert.equal(one.threads, 1);
  assert.match(one.threadsReason, /asked for one/);
  const page = await shared.browser.newPage();
  await page.goto(`${shared.server.url}bench/browser.html`);
  const message = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    return m.createExtractor({ modelUrl: '/models/default/', threads: 0 }).then(() => null, (e) => e.message);
  });
  assert.match(message, /threads must be 'auto' or a whole number from 1/);
  await page.close();
});

test('the worker wrapper runs threads too, with the same bits', { skip: THREADS_MISSING }, async () => {
  const worker = await runOn('', {}, 'createWorkerExtractor');
  const single = await runOn('?isolation=off', {}, 'createWorkerExtractor');
  assert.equal(worker.threads, Math.min(worker.cores, 8), worker.threadsReason);
  assert.equal(single.threads, 1, single.threadsReason);
  assert.equal(worker.vectors, single.vectors);
  assert.equal(worker.predictions, single.predictions);
});
