// The package's API in headless Chromium, beyond the demo: per-query errors in batches,
// AbortSignal on long calls, camelCase inputs, a worker that cannot start, a Hugging Face
// directory without a manifest, the worker module imported on the main thread, and the
// package served from another origin (a CDN).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, MODEL_DIR, TKRE, THREADS_MISSING, COMPARE_BUILD, startServer, serveStatic, demoServerAndBrowser } from './harness.js';
import { spawnSync } from 'node:child_process';

const BASE_MODEL = path.join(process.env.TKRE_CACHE ?? path.join(process.env.HOME, '.cache/tkre'), 'models/all-MiniLM-L6-v2');
// What a CDN sends: files another origin may fetch and run.
const CORS = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' };
const EINSTEIN = '[E1]Einstein[/E1] was born in [E2]Ulm[/E2].';
const shared = demoServerAndBrowser();

async function demoPage() {
  const page = await shared.browser.newPage();
  await page.goto(`${shared.server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  return page;
}

test('a batch answers every readable query and gives each unreadable one its own error', async () => {
  const page = await demoPage();
  const result = await page.evaluate(async (einstein) => {
    const m = await import('/pkg/src/index.js');
    const out = {};
    for (const [name, create] of [['main', m.createExtractor], ['worker', m.createWorkerExtractor]]) {
      const x = await create({ modelUrl: '/models/default/', backend: 'cpu' });
      await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
      await x.addExamples('works for', [{ text: 'Tim Cook works for Apple.', head: { start: 0, end: 8 }, tail: { start: 19, end: 24 }, headType: 'person', tailType: 'organization' }]);
      const batch = await x.classify([einstein, 'no markers at all', 42, { text: 'ab', head: { start: 0, end: 1 }, tail: { start: 5, end: 9 } }, einstein]);
      let single = null;
      try {
        await x.classify('no markers at all');
      } catch (e) {
        single = { kind: e.kind, message: e.message };
      }
      let misspelt = null;
      try {
        await x.addExamples('works for', [{ text: 'a b', head: { start: 0, end: 1 }, tail: { start: 2, end: 3 }, headtype: 'person' }]);
      } catch (e) {
        misspelt = e.message;
      }
      out[name] = { batch, single, misspelt, relations: await x.relations() };
      await x.dispose();
    }
    return out;
  }, EINSTEIN);
  for (const [name, { batch, single, misspelt, relations }] of Object.entries(result)) {
    assert.equal(batch.length, 5, name);
    assert.equal(batch[0].ranked[0].relation, 'born in', name);
    assert.deepEqual(batch[4], batch[0], `${name}: the same query, the same answer`);
    for (const [i, item] of [[1, batch[1]], [2, batch[2]], [3, batch[3]]]) {
      assert.equal(typeof item.error, 'string', `${name} item ${i}: ${JSON.stringify(item)}`);
      assert.match(item.error, new RegExp(`^query #${i + 1}: `), item.error);
      assert.equal(item.kind, 'instance', item.error);
      assert.equal(item.ranked, undefined);
    }
    assert.equal(single?.kind, 'instance', `${name}: a single unreadable query rejects`);
    assert.match(misspelt, /unknown field `headtype`/, `${name}: ${misspelt}`);
    assert.deepEqual(relations.map((r) => [r.key, r.examples]), [['born in', 1], ['works for', 1]]);
  }
  await page.close();
});

test('an AbortSignal stops a long classification within a second, on the page and in the worker', async () => {
  const page = await demoPage();
  const result = await page.evaluate(async (einstein) => {
    const m = await import('/pkg/src/index.js');
    const queries = Array.from({ length: 3000 }, (_, i) => `[E1]Person ${i}[/E1] was born in [E2]Town ${i}[/E2].`);
    const out = {};
    for (const [name, create] of [['main', m.createExtractor], ['worker', m.createWorkerExtractor]]) {
      const x = await create({ modelUrl: '/models/default/', backend: 'cpu' });
      await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
      const pre = new AbortController();
      pre.abort();
      const already = await x.classify(einstein, { signal: pre.signal }).then(() => 'resolved', (e) => e.name);
      const editAlready = await x.addExamples('born in', [einstein], { signal: pre.signal }).then(() => 'resolved', (e) => e.name);
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(), 300);
      const outcome = await x.classify(queries, { signal: controller.signal }).then(() => 'resolved', (e) => e.name);
      const rejectedAfter = performance.now() - started;
      // The worker stops its work too: the next call is answered at once, not after the rest.
      const next = performance.now();
      const answer = await x.classify(einstein);
      const nextMs = performance.now() - next;
      out[name] = { already, editAlready, outcome, rejectedAfter, nextMs, best: answer.ranked[0].relation, examples: (await x.relations())[0].examples };
      await x.dispose();
    }
    return out;
  }, EINSTEIN);
  for (const [name, r] of Object.entries(result)) {
    assert.equal(r.already, 'AbortError', name);
    assert.equal(r.editAlready, 'AbortError', name);
    assert.equal(r.examples, 1, `${name}: an edit aborted before it started changes nothing`);
    assert.equal(r.outcome, 'AbortError', name);
    assert.ok(r.rejectedAfter < 1300, `${name}: rejected ${r.rejectedAfter} ms after the start (abort at 300 ms)`);
    assert.ok(r.nextMs < 1500, `${name}: the next call took ${r.nextMs} ms: the aborted work went on`);
    assert.equal(r.best, 'born in');
  }
  await page.close();
});

test('an aborted load rejects with an AbortError, and a worker that cannot start rejects instead of hanging', async () => {
  const page = await demoPage();
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const controller = new AbortController();
    const loading = m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu', useCache: false, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const aborted = await loading.then(() => 'resolved', (e) => e.name);
    const started = performance.now();
    const missing = await m
      .createWorkerExtractor({ modelUrl: '/models/default/', worker: () => new Worker('/pkg/src/no-such-worker.js', { type: 'module' }) })
      .then(() => null, (e) => ({ kind: e.kind, message: e.message }));
    return { aborted, missing, missingMs: performance.now() - started };
  });
  assert.equal(result.aborted, 'AbortError');
  assert.equal(result.missing?.kind, 'worker-failed', JSON.stringify(result.missing));
  assert.match(result.missing.message, /could not be loaded/);
  assert.ok(result.missingMs < 10000, `${result.missingMs} ms`);
  await page.close();
});

test('a wasm module of another build is refused with a clear error, and a later load with the right one works', { skip: THREADS_MISSING }, async () => {
  // Other builds than wasm/'s: the threaded one (its imports differ, so it does not link) and,
  // where it has been built, the comparison one (it links, then reads strings back as garbage).
  const others = ['/pkg/wasm-threads/tkre_bg.wasm'];
  if (COMPARE_BUILD) others.push('/pkg/wasm-compare/tkre_bg.wasm');
  for (const other of others) {
    const page = await shared.browser.newPage();
    // Not the demo page: it loads the wasm first, with its own options.
    await page.goto(`${shared.server.url}bench/browser.html`);
    const result = await page.evaluate(async ({ other, einstein }) => {
      const m = await import('/pkg/src/index.js');
      const options = { modelUrl: '/models/default/', backend: 'cpu', threads: 1 };
      const refused = await m.createExtractor({ ...options, wasmUrl: other }).then(() => null, (e) => e.message);
      const x = await m.createExtractor(options);
      await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
      const [prediction] = await x.classify([einstein]);
      await x.dispose();
      return { refused, relation: prediction.ranked[0].relation };
    }, { other, einstein: EINSTEIN });
    await page.close();
    assert.match(result.refused ?? 'loaded', /the wasm module .* is not the one this package's JavaScript glue \(wasm\/tkre\.js\) was built with/, other);
    assert.equal(result.relation, 'born in', `${other}: the next load, with the package's own module, works`);
  }
});

test('importing tkre-web/worker on the page leaves the page alone', async () => {
  const page = await demoPage();
  const handler = await page.evaluate(async () => {
    await import('/pkg/src/worker.js');
    return self.onmessage;
  });
  assert.equal(handler, null);
  await page.close();
});

test('a Hugging Face directory without a manifest loads unverified, with a warning, and scores as native tkre', async () => {
  // The demo server serves $TKRE_WEB_MODELS/NAME at /models/NAME/ (the page's CSP admits only
  // its own origin): the base model as it is installed, a Hugging Face directory.
  const models = mkdtempSync(path.join(tmpdir(), 'tkre-models-'));
  symlinkSync(BASE_MODEL, path.join(models, 'hf'));
  process.env.TKRE_WEB_MODELS = models;
  const hf = await startServer();
  delete process.env.TKRE_WEB_MODELS;
  const page = await shared.browser.newPage();
  await page.goto(`${hf.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const warnings = [];
  page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  const url = '/models/hf/';
  const result = await page.evaluate(async ({ url, einstein }) => {
    const m = await import('/pkg/src/index.js');
    const x = await m.createExtractor({ modelUrl: url, backend: 'cpu' });
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
    const prediction = await x.classify(einstein);
    const info = { manifest: x.manifest, verified: x.loadInfo.verified, prediction };
    await x.dispose();
    return info;
  }, { url, einstein: EINSTEIN }).finally(() => hf.stop());
  assert.equal(result.manifest, null);
  assert.equal(result.verified, false);
  assert.ok(warnings.some((w) => /manifest\.json is missing.*unverified/.test(w)), warnings.join('\n'));
  const dir = mkdtempSync(path.join(tmpdir(), 'tkre-hf-'));
  const support = path.join(dir, 'support.json');
  writeFileSync(support, JSON.stringify({
    version: 2,
    relations: [
      { key: 'born in', examples: ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].'] },
      { key: 'works for', examples: ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].'] },
    ],
  }));
  const native = spawnSync(TKRE, ['classify', '--model', BASE_MODEL, '--support', support], { input: `${EINSTEIN}\n`, encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  const expected = JSON.parse(native.stdout.trim()).ranked;
  for (const [i, score] of result.prediction.ranked.entries()) {
    assert.equal(score.relation, expected[i].relation);
    assert.ok(Math.abs(score.similarity - expected[i].similarity) < 1e-3, `${score.similarity} vs ${expected[i].similarity}`);
  }
});

test('the package served from another origin runs its worker through a blob module', async () => {
  const cdn = await serveStatic({ '/pkg/': path.join(ROOT, 'pkg'), '/model/': MODEL_DIR }, CORS);
  const pageDir = mkdtempSync(path.join(tmpdir(), 'tkre-page-'));
  writeFileSync(path.join(pageDir, 'index.html'), '<!doctype html><title>another origin</title>');
  const site = await serveStatic({ '/': pageDir });
  const page = await shared.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`http://127.0.0.1:${site.address().port}/`);
    const base = `http://localhost:${cdn.address().port}`;
    const result = await page.evaluate(async ({ base, einstein }) => {
      const m = await import(`${base}/pkg/src/index.js`);
      const x = await m.createWorkerExtractor({ modelUrl: `${base}/model/`, backend: 'cpu' });
      await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
      await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
      const prediction = await x.classify(einstein);
      await x.dispose();
      return { best: prediction.ranked[0].relation, origin: location.origin };
    }, { base, einstein: EINSTEIN });
    assert.equal(result.best, 'born in');
    assert.notEqual(result.origin, base);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    cdn.close();
    site.close();
  }
});

test('extract in the browser equals tkre extract, handles odd documents, reports progress and stops on abort', async () => {
  const document = 'Marie Curie was born in Warsaw in 1867. Dr. J. Smith works for Apple.\n\nZoë Ünal was born in Köln. ' +
    'Steve Jobs founded Apple in Cupertino.';
  const entities = [{ name: 'Apple Inc.', aliases: ['Apple'] }];
  const page = await demoPage();
  const result = await page.evaluate(async ({ document, entities }) => {
    const m = await import('/pkg/src/index.js');
    const out = {};
    const support = await (await fetch('/examples/support_set.json')).text();
    for (const [name, create] of [['main', m.createExtractor], ['worker', m.createWorkerExtractor]]) {
      const x = await create({ modelUrl: '/models/default/', backend: 'cpu' });
      await x.loadSupportSet(support);
      const progress = [];
      const found = await x.extract(document, { entities, threshold: 0.3 }, { onProgress: (p) => progress.push(p) });
      const empty = await x.extract('');
      const junk = await x.extract(String.fromCharCode(...Array.from({ length: 3000 }, (_, i) => (i * 7919) % 65000)));
      // A long document (about 1 MB) of ordinary sentences, stopped half a second in.
      const long = 'Marie Curie was born in Warsaw and later moved to the city of Paris. '.repeat(15000);
      const controller = new AbortController();
      const started = performance.now();
      setTimeout(() => controller.abort(), 500);
      const aborted = await x.extract(long, {}, { signal: controller.signal }).then(() => 'resolved', (e) => e.name);
      const abortMs = performance.now() - started;
      const after = await x.extract('Paris is the capital of France.');
      out[name] = { found, progress, empty, junkSentences: junk.sentences.length, aborted, abortMs, after: after.triples.length };
      await x.dispose();
    }
    return out;
  }, { document, entities });
  const dir = mkdtempSync(path.join(tmpdir(), 'tkre-extract-'));
  writeFileSync(path.join(dir, 'entities.json'), JSON.stringify(entities));
  const native = spawnSync(TKRE, ['extract', '--model', MODEL_DIR, '--support', path.join(ROOT, 'examples/support_set.json'),
    '--entities', path.join(dir, 'entities.json'), '--threshold', '0.3', '--quiet'], { input: document, encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  const nativeSentences = native.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const nativeTriples = nativeSentences.flatMap((s) => s.triples);
  for (const [name, r] of Object.entries(result)) {
    assert.deepEqual(r.found.sentences, nativeSentences.map((s) => s.sentence), name);
    assert.deepEqual(r.found.mentions, nativeSentences.flatMap((s) => s.mentions), name);
    const key = (t) => `${t.head.start}-${t.head.end}>${t.tail.start}-${t.tail.end}:${t.relation}`;
    assert.deepEqual(r.found.triples.map(key), nativeTriples.map(key), `${name}: the same triples as tkre extract`);
    for (const [i, t] of r.found.triples.entries()) {
      assert.ok(Math.abs(t.similarity - nativeTriples[i].similarity) < 1e-3, `${name}: ${t.similarity} vs ${nativeTriples[i].similarity}`);
    }
    assert.ok(r.found.triples.length > 0, name);
    assert.deepEqual(r.progress.at(-1), { status: 'extract', done: 4, total: 4 });
    assert.ok(r.progress.length >= 1);
    assert.deepEqual(r.empty, { sentences: [], mentions: [], triples: [] });
    assert.ok(r.junkSentences >= 1, name);
    assert.equal(r.aborted, 'AbortError', name);
    assert.ok(r.abortMs < 1500, `${name}: the abort took ${r.abortMs} ms (at 500 ms)`);
    assert.ok(r.after >= 0);
  }
  await page.close();
});
