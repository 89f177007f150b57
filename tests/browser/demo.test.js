// The demo page in headless Chromium: loads the default model, classifies, and matches the
// native `tkre classify` scores on both backends; records every request it makes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { ROOT, MODEL_DIR, startServer, launchBrowser, nativeClassify, nativeEmbed, openDemo, classifyOnPage, recordRequests } from './harness.js';

// WebGPU (SwiftShader) and CPU both compute in f32 but sum in different orders; similarities
// agree to ~1e-5. Probabilities are a softmax at temperature 0.05, which multiplies
// similarity differences by 20.
const SIMILARITY_TOLERANCE = 1e-3;
const PROBABILITY_TOLERANCE = 1e-2;

const queries = readFileSync(path.join(ROOT, 'examples/queries.txt'), 'utf8').trim().split('\n');
let server;
let browser;
let native;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  native = nativeClassify(queries);
});

after(async () => {
  await browser?.close();
  server?.stop();
});

for (const backend of ['webgpu', 'cpu']) {
  test(`demo page scores equal native tkre classify (${backend})`, async () => {
    const { page, errors } = await openDemo(browser, server.url, `?backend=${backend}`);
    const footer = await page.textContent('#backend');
    assert.match(footer, new RegExp(`backend: ${backend}`), footer);
    for (const [i, query] of queries.entries()) {
      const { prediction, backend: used } = await classifyOnPage(page, query);
      assert.equal(used, backend);
      const expected = native[i].ranked;
      assert.deepEqual(prediction.ranked.map((r) => r.relation), expected.map((r) => r.relation), query);
      for (const [j, score] of prediction.ranked.entries()) {
        assert.ok(Math.abs(score.similarity - expected[j].similarity) < SIMILARITY_TOLERANCE,
          `${query}: ${score.relation} similarity ${score.similarity} vs native ${expected[j].similarity}`);
        assert.ok(Math.abs(score.probability - expected[j].probability) < PROBABILITY_TOLERANCE,
          `${query}: ${score.relation} probability ${score.probability} vs native ${expected[j].probability}`);
      }
    }
    assert.deepEqual(errors, []);
    await page.close();
  });
}

// The default model's calibrated threshold is in force on the demo: a sentence that states no
// relation of the example set is answered "no relation", one that does is answered with it.
test('the demo answers "no relation" by default where no example relation holds', async () => {
  const { page, errors } = await openDemo(browser, server.url, '?backend=cpu');
  const cat = await classifyOnPage(page, '[E1]The cat[/E1] sat on [E2]the mat[/E2].');
  assert.equal(cat.prediction.noneOfTheAbove, true, JSON.stringify(cat.prediction));
  assert.equal(cat.prediction.none_of_the_above, true, 'the deprecated name is kept for one version');
  assert.ok(cat.prediction.noneProbability > cat.prediction.ranked[0].probability);
  assert.match(await page.textContent('#result'), /No relation/);
  const einstein = await classifyOnPage(page, '[E1]Einstein[/E1] was born in [E2]Ulm[/E2].');
  assert.equal(einstein.prediction.noneOfTheAbove, false);
  assert.equal(einstein.prediction.ranked[0].relation, 'place of birth');
  assert.deepEqual(errors, []);
  await page.close();
});

test('the page requests nothing but its own files and the model', async () => {
  const page = await browser.newPage();
  const requests = recordRequests(page);
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  await classifyOnPage(page, queries[0]);
  const origin = new URL(server.url).origin;
  const allowed = [/^\/$/, /^\/(app\.js|style\.css)$/, /^\/pkg\/(src|wasm|wasm-threads)\//, /^\/examples\/support_set\.json$/, /^\/models\/default\//];
  const foreign = requests.filter((u) => {
    const url = new URL(u);
    return url.origin !== origin || !allowed.some((re) => re.test(url.pathname));
  });
  assert.deepEqual(foreign, [], `unexpected requests: ${foreign.join(', ')}`);
  assert.ok(requests.some((u) => u.includes('/models/default/model.safetensors')));
  await page.close();
});

test('bad input is a message on the page, not a crash', async () => {
  const { page, errors } = await openDemo(browser, server.url, '?backend=cpu');
  await page.fill('#query', 'no entity markers here');
  await page.click('#classify');
  await page.waitForFunction(() => document.getElementById('error').textContent !== '');
  assert.match(await page.textContent('#error'), /\[E1\] is missing/);
  // The module still works afterwards.
  const { prediction } = await classifyOnPage(page, '[E1]Tokyo[/E1] became the capital of [E2]Japan[/E2] in 1868.');
  assert.equal(prediction.ranked.length, 5);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a loaded support set with a FewRel record renders every example', async () => {
  const { page, errors } = await openDemo(browser, server.url, '?backend=cpu');
  const set = {
    version: 2,
    relations: [
      { key: 'born in', examples: [
        { tokens: ['Marie', 'Curie', 'was', 'born', 'in', 'Warsaw', '.'], h: ['Marie Curie', 'Q7186', [[0, 1]]], t: ['Warsaw', 'Q270', [[5]]] },
        '[E1]Einstein[/E1] was born in [E2]Ulm[/E2].',
      ] },
      { key: 'works for', examples: [{ text: 'Tim Cook works for Apple.', head: { start: 0, end: 8 }, tail: { start: 19, end: 24 } }] },
    ],
  };
  await page.setInputFiles('#load-set', { name: 'set.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(set)) });
  await page.waitForFunction(() => document.querySelectorAll('#relations .e1').length === 3);
  const heads = await page.$$eval('#relations .e1', (spans) => spans.map((s) => s.textContent));
  assert.deepEqual(heads, ['Marie Curie', 'Einstein', 'Tim Cook']);
  assert.deepEqual(errors, []);
  await page.close();
});

test('?model= from another origin is refused and the default model loads', async () => {
  const { page, errors } = await openDemo(browser, server.url, '?backend=cpu&model=https://example.invalid/models/x/');
  assert.match(await page.textContent('#error'), /must name a model folder on this site/);
  await page.evaluate(() => { document.getElementById('error').textContent = ''; });
  const { prediction } = await classifyOnPage(page, '[E1]Tokyo[/E1] became the capital of [E2]Japan[/E2] in 1868.');
  assert.equal(prediction.ranked.length, 5);
  const csp = await page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.content);
  assert.match(csp, /connect-src 'self'/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the demo shows the answer without scrolling (desktop), folds the relations (phone); screenshots', async () => {
  const dir = path.join(ROOT, 'reports/screenshots');
  mkdirSync(dir, { recursive: true });
  for (const [name, viewport] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 900 }]]) {
    const { page } = await openDemo(browser, server.url, '?backend=cpu', viewport);
    await classifyOnPage(page, queries[0]);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= viewport.width, `${name}: page is ${width}px wide in a ${viewport.width}px viewport`);
    const layout = await page.evaluate(() => ({
      result: document.getElementById('result').getBoundingClientRect().bottom,
      classify: document.getElementById('classify').getBoundingClientRect().bottom,
      relationsOpen: document.getElementById('relations-details').open,
      preview: document.getElementById('query-preview').textContent,
    }));
    if (name === 'desktop') {
      assert.ok(layout.result <= viewport.height, `the result ends at ${layout.result}px, below the fold (${viewport.height}px)`);
      assert.equal(layout.relationsOpen, true);
    } else {
      assert.ok(layout.classify <= viewport.height, `Classify at ${layout.classify}px on a phone`);
      assert.equal(layout.relationsOpen, false, 'the relations are folded on a phone');
    }
    assert.equal(layout.preview, queries[0].replace(/\[\/?E[12]\]/g, ''), 'the query is shown with its marks as highlights');
    // What a visitor sees first (desktop) and the whole page (phone).
    await page.screenshot({ path: path.join(dir, `demo-${name}.png`), fullPage: name === 'phone' });
    await page.close();
  }
});

test('the demo has no accessibility violations (axe-core), before and after a classification', async () => {
  const axe = readFileSync(path.join(ROOT, 'tests/browser/node_modules/axe-core/axe.min.js'), 'utf8');
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    const { page } = await openDemo(browser, server.url, '?backend=cpu', viewport);
    // Evaluated, not a <script>: the page's CSP admits only its own scripts.
    await page.evaluate(axe);
    const audit = () => page.evaluate(async () => {
      const { violations } = await window.axe.run(document, { resultTypes: ['violations'] });
      return violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
    });
    assert.deepEqual(await audit(), [], `${viewport.width}px, loaded`);
    await classifyOnPage(page, queries[0]);
    assert.deepEqual(await audit(), [], `${viewport.width}px, after a classification`);
    await page.close();
  }
});

test('the controls are disabled while the model loads, and the support-set file opens from the keyboard', async () => {
  const page = await browser.newPage();
  // Listening early: Playwright turns file-chooser interception on asynchronously, so a listener
  // added together with the key press can miss the chooser it opens.
  const chooserOpened = page.waitForEvent('filechooser', { timeout: 60_000 });
  // Hold the model's weights back, so the page is caught while it loads.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/models/default/model.safetensors', async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(`${server.url}?backend=cpu`);
  await page.waitForSelector('#controls');
  assert.equal(await page.$eval('#controls', (f) => f.disabled), true);
  assert.equal(await page.$eval('#classify', (b) => b.matches(':disabled')), true);
  release();
  await page.evaluate(() => window.tkreDemo.ready);
  assert.equal(await page.$eval('#classify', (b) => b.matches(':disabled')), false);
  // The file chooser opens from a focused button and Enter.
  await page.focus('#load-set-button');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'load-set-button');
  await page.keyboard.press('Enter');
  const chooser = await chooserOpened;
  assert.equal(await chooser.element().evaluate((input) => input.id), 'load-set');
  await page.close();
});

test('an error clears the previous answer', async () => {
  const { page } = await openDemo(browser, server.url, '?backend=cpu');
  await classifyOnPage(page, queries[0]);
  assert.notEqual(await page.textContent('#result'), '');
  await page.fill('#query', 'a sentence without marks');
  await page.click('#classify');
  await page.waitForFunction(() => document.getElementById('error').textContent !== '');
  assert.equal(await page.textContent('#result'), '');
  await page.close();
});

// Both engines run a fused forward pass of their own (src/engine/cpu.rs and
// src/engine/webgpu.rs): a ragged batch of short and long sentences checks each against the native
// burn forward pass, sentence by sentence.
for (const backend of ['cpu', 'webgpu']) {
  test(`sentence embeddings in the browser equal native tkre embed (${backend})`, async () => {
    const long = Array.from({ length: 12 }, (_, i) => `Clause ${i} says that the river Vltava flows through Prague in Bohemia.`).join(' ');
    const texts = ['The quick brown fox jumps over the lazy dog.', 'Marie Curie was born in Warsaw.', 'ok', long];
    const page = await browser.newPage();
    await page.goto(`${server.url}?backend=${backend}`);
    await page.evaluate(() => window.tkreDemo.ready);
    const browserVectors = await page.evaluate(async ({ texts, backend }) => {
      const m = await import('/pkg/src/index.js');
      const x = await m.createExtractor({ modelUrl: '/models/default/', backend });
      const many = await x.embed(texts);
      const one = await x.embed(texts[0]);
      const used = x.backend;
      const reason = x.backendReason;
      await x.dispose();
      return { many, one, used, reason };
    }, { texts, backend });
    assert.equal(browserVectors.used, backend);
    // The default model is int8: on the CPU its products run in integers, with activations
    // quantized per token to 15-16 bits (src/engine/kernels/quantized_linear.rs), where native burn
    // multiplies the same int8 weights in f32. Measured: within 2e-4 of native.
    const integers = /int8 weights multiplied in integers/.test(browserVectors.reason);
    assert.equal(integers, backend === 'cpu', `backend reason: ${browserVectors.reason}`);
    const tolerance = integers ? 1e-3 : 1e-4;
    const native = nativeEmbed(texts);
    assert.equal(browserVectors.many.length, texts.length);
    for (const [i, vector] of browserVectors.many.entries()) {
      assert.equal(vector.length, native[i].length);
      const worst = Math.max(...vector.map((v, j) => Math.abs(v - native[i][j])));
      assert.ok(worst < tolerance, `${backend}, ${texts[i].slice(0, 40)}: largest difference ${worst}`);
    }
    // A sentence's vector does not depend on the others in its batch.
    const alone = Math.max(...browserVectors.one.map((v, j) => Math.abs(v - browserVectors.many[0][j])));
    assert.ok(alone < 1e-6, `${backend}: alone vs in a batch differs by ${alone}`);
    await page.close();
  });
}

// `auto` takes WebGPU only on a hardware adapter: a software fallback (SwiftShader, as in
// headless Chromium on a machine without a GPU) is slower than the CPU engine.
test('auto passes over a software WebGPU adapter and says why', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const adapter = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
    const software = adapter ? (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter) : null;
    const m = await import('/pkg/src/index.js');
    const x = await m.createExtractor({ modelUrl: '/models/default/', backend: 'auto' });
    const out = { software, backend: x.backend, reason: x.backendReason };
    await x.dispose();
    return out;
  });
  assert.notEqual(result.software, null, 'this browser exposes no WebGPU adapter at all');
  if (result.software) {
    assert.equal(result.backend, 'cpu', result.reason);
    assert.match(result.reason, /software fallback/);
  } else {
    assert.equal(result.backend, 'webgpu', result.reason);
    assert.match(result.reason, /hardware WebGPU adapter/);
  }
  await page.close();
});

test('the worker wrapper takes URL objects and a Worker of your own', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    let made = 0;
    const x = await m.createWorkerExtractor({
      modelUrl: new URL('/models/default/', location.href),
      wasmUrl: new URL('/pkg/wasm/tkre_bg.wasm', location.href),
      backend: 'cpu',
      worker: () => {
        made += 1;
        return new Worker('/pkg/src/worker.js', { type: 'module' });
      },
    });
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    const prediction = await x.classify('[E1]Einstein[/E1] was born in [E2]Ulm[/E2].');
    await x.dispose();
    return { made, best: prediction.ranked[0].relation };
  });
  assert.deepEqual(result, { made: 1, best: 'born in' });
  await page.close();
});

test('load progress has stages and counts the wasm', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const events = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const seen = [];
    // A fresh worker initialises its own wasm module, so its download is reported too.
    const x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu', onProgress: (p) => seen.push(p) });
    await x.dispose();
    return seen;
  });
  const wasmDone = events.find((e) => e.stage === 'wasm' && e.status === 'done');
  assert.ok(wasmDone && wasmDone.loaded > 1e6, `the wasm download is counted: ${JSON.stringify(wasmDone)}`);
  const modelDone = events.filter((e) => e.stage === 'model' && e.status === 'done').map((e) => e.file);
  // The learned mention proposer loads with the model, since its manifest lists it.
  assert.deepEqual(modelDone, ['config.json', 'model.safetensors', 'tokenizer.json', 'mention_head.json']);
  assert.ok(events.findIndex((e) => e.stage === 'wasm') < events.findIndex((e) => e.stage === 'model'), 'wasm first');
  assert.equal(events.at(-1).status, 'ready');
  await page.close();
});

test('a disposed extractor stays readable and rejects every call', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const out = [];
    for (const create of [m.createExtractor, m.createWorkerExtractor]) {
      const x = await create({ modelUrl: '/models/default/', backend: 'cpu' });
      await x.dispose();
      await x.dispose(); // twice is fine
      let error = null;
      try {
        await x.classify('[E1]a[/E1] b [E2]c[/E2].');
      } catch (e) {
        error = e.message;
      }
      out.push({ backend: x.backend, reason: x.backendReason, error });
    }
    return out;
  });
  for (const disposed of result) {
    assert.equal(disposed.backend, 'cpu');
    assert.match(disposed.reason, /\(disposed\)$/);
    assert.match(disposed.error, /disposed/);
  }
  await page.close();
});

test('a worker whose module dies recovers on the CPU with the same support set', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu' });
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
    const before = await x.classify('[E1]Einstein[/E1] was born in [E2]Ulm[/E2].');
    await x.simulateFatalError().catch(() => {});
    const after = await x.classify('[E1]Einstein[/E1] was born in [E2]Ulm[/E2].');
    const reason = x.backendReason;
    await x.dispose();
    return { before, after, reason };
  });
  assert.deepEqual(result.after.ranked.map((r) => r.relation), result.before.ranked.map((r) => r.relation));
  assert.ok(Math.abs(result.after.ranked[0].probability - result.before.ranked[0].probability) < 1e-5);
  assert.match(result.reason, /fell back to CPU after: .*unreachable/);
  await page.close();
});

test('errors quoting "device lost" or a trap do not tear the worker down; errors carry a kind', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const changes = [];
    const x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu', onBackendChange: (c) => changes.push(c) });
    await x.addExamples('GPU lost', ['[E1]The device was lost[/E1] in [E2]RuntimeError unreachable[/E2].']);
    await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
    const answer = await x.classify('[E1]the device was lost[/E1] said [E2]GPU lost[/E2].');
    const errors = [];
    for (const bad of [
      () => x.classify('the device was lost: no markers, RuntimeError unreachable'),
      () => x.addExamples('GPU lost', ['[E1]unreachable[/E1] without a tail']),
      () => x.setNoneThreshold('device lost'),
    ]) {
      try {
        await bad();
        errors.push(null);
      } catch (e) {
        errors.push({ kind: e.kind, message: e.message });
      }
    }
    const still = await x.classify('[E1]Einstein[/E1] works for [E2]Princeton[/E2].');
    let badLength = null;
    try {
      await m.createExtractor({ modelUrl: '/models/default/', backend: 'cpu', maxLength: 3 });
    } catch (e) {
      badLength = { kind: e.kind, message: e.message };
    }
    const state = { backend: x.backend, reason: x.backendReason };
    await x.dispose();
    return { answer, errors, still, changes, state, badLength };
  });
  assert.equal(result.answer.ranked.length, 2);
  assert.equal(result.still.ranked.length, 2);
  assert.equal(result.changes.length, 0, 'no recovery: nothing was fatal');
  assert.doesNotMatch(result.state.reason, /fell back/);
  for (const error of result.errors) {
    assert.ok(error, 'bad input must be rejected');
    assert.notEqual(error.kind, 'trap', error.message);
    assert.ok(['input', 'instance', 'support-set', 'option', 'error'].includes(error.kind), JSON.stringify(error));
  }
  assert.equal(result.badLength?.kind, 'option', JSON.stringify(result.badLength));
  assert.match(result.badLength.message, /maximum length 3: give 8 to \d+ tokens/);
  await page.close();
});

test('bad model files through the Worker are rejected with a kind, and the worker loads a good model afterwards', async () => {
  const manifest = JSON.parse(readFileSync(path.join(MODEL_DIR, 'manifest.json'), 'utf8'));
  const config = JSON.parse(readFileSync(path.join(MODEL_DIR, 'config.json'), 'utf8'));
  const entry = (text) => ({ sha256: createHash('sha256').update(text).digest('hex'), bytes: Buffer.byteLength(text) });
  const badModels = {
    dropout: { config: { ...config, hidden_dropout_prob: 1.5 }, needle: /hidden_dropout_prob/ },
    layers: { config: { ...config, num_hidden_layers: 1000000000 }, needle: /num_hidden_layers/ },
    positions: { config: { ...config, max_position_embeddings: 4 }, needle: /at least 8/ },
    // Refused by the one manifest parser (tkre::checkpoint::Manifest, in the wasm module).
    unlisted: { drop: 'model.safetensors', needle: /"files" does not list model\.safetensors/, kind: 'model' },
  };
  const context = await browser.newContext();
  for (const [name, bad] of Object.entries(badModels)) {
    const files = { ...manifest.files };
    let configText = null;
    if (bad.config) {
      configText = JSON.stringify(bad.config);
      files['config.json'] = entry(configText);
    }
    if (bad.drop) delete files[bad.drop];
    await context.route(`**/models/bad-${name}/manifest.json`, (route) => route.fulfill({ contentType: 'application/json', body: JSON.stringify({ ...manifest, files }) }));
    await context.route(`**/models/bad-${name}/config.json`, (route) => route.fulfill({ contentType: 'application/json', body: configText ?? JSON.stringify(config) }));
    for (const file of ['model.safetensors', 'tokenizer.json', 'mention_head.json']) {
      await context.route(`**/models/bad-${name}/${file}`, (route) => route.fulfill({ body: readFileSync(path.join(MODEL_DIR, file)) }));
    }
  }
  const page = await context.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async (names) => {
    const m = await import('/pkg/src/index.js');
    const x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu' });
    const errors = {};
    for (const name of names) {
      const started = performance.now();
      try {
        await x.load({ modelUrl: `/models/bad-${name}/`, backend: 'cpu', useCache: false });
        errors[name] = null;
      } catch (e) {
        errors[name] = { kind: e.kind, message: e.message, ms: performance.now() - started };
      }
    }
    await x.load({ modelUrl: '/models/default/', backend: 'cpu' });
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
    // A support example as the query: its own relation must win.
    const answer = await x.classify('[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].');
    await x.dispose();
    return { errors, answer };
  }, Object.keys(badModels));
  for (const [name, bad] of Object.entries(badModels)) {
    const error = result.errors[name];
    assert.ok(error, `${name}: a bad model must be refused`);
    assert.match(error.message, bad.needle, `${name}: ${error.message}`);
    assert.notEqual(error.kind, 'trap', `${name}: ${error.message}`);
    if (bad.kind) assert.equal(error.kind, bad.kind, `${name}: ${error.message}`);
    assert.ok(error.ms < 20000, `${name}: refused after ${error.ms} ms`);
  }
  assert.equal(result.answer.ranked[0].relation, 'born in');
  await context.close();
});

test('a lost WebGPU device moves the worker to the CPU with the same support set', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  const result = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    const changes = [];
    const x = await m.createWorkerExtractor({
      modelUrl: '/models/default/',
      backend: 'webgpu',
      onBackendChange: (info) => changes.push(info),
    });
    const initial = x.backend;
    await x.addExamples('born in', ['[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2].']);
    await x.addExamples('works for', ['[E1]Tim Cook[/E1] works for [E2]Apple[/E2].']);
    const query = '[E1]Einstein[/E1] was born in [E2]Ulm[/E2].';
    const before = await x.classify(query);
    // device.destroy(): the browser resolves the device's `lost` promise, as after a GPU reset.
    await x.simulateDeviceLoss();
    const after = await x.classify(query);
    const relations = await x.relations();
    const state = { backend: x.backend, reason: x.backendReason };
    await x.dispose();
    return { initial, before, after, relations, state, changes };
  });
  assert.equal(result.initial, 'webgpu');
  assert.equal(result.state.backend, 'cpu');
  assert.match(result.state.reason, /fell back to CPU after: WebGPU device lost \(destroyed/);
  assert.equal(result.changes.length, 1);
  assert.deepEqual(result.relations.map((r) => [r.name, r.examples]), [['born in', 1], ['works for', 1]]);
  assert.deepEqual(result.after.ranked.map((r) => r.relation), result.before.ranked.map((r) => r.relation));
  // WebGPU and CPU scores agree to the tolerance of the cross-backend test above.
  for (const [a, b] of result.after.ranked.map((r, i) => [r, result.before.ranked[i]])) {
    assert.ok(Math.abs(a.similarity - b.similarity) < SIMILARITY_TOLERANCE, `${a.relation}: ${a.similarity} vs ${b.similarity}`);
  }
  await page.close();
});

test('a reload reads the model from the Cache API, and a corrupt file is rejected', async () => {
  const context = await browser.newContext();
  const load = async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}?backend=cpu`);
    const info = await page.evaluate(async () => {
      const m = await import('/pkg/src/index.js');
      const x = await m.createExtractor({ modelUrl: '/models/default/', backend: 'cpu' });
      const loadInfo = x.loadInfo;
      await x.dispose();
      return loadInfo;
    });
    await page.close();
    return info;
  };
  assert.equal((await load()).fromCache, false);
  assert.equal((await load()).fromCache, true);

  // A file whose bytes do not match the manifest's sha256 is refused with a clear message.
  const page = await context.newPage();
  await page.route('**/models/default/tokenizer.json', (route) => route.fulfill({ body: '{"truncated": ' }));
  await page.goto(`${server.url}?backend=cpu`);
  const error = await page.evaluate(async () => {
    const m = await import('/pkg/src/index.js');
    await m.clearModelCache();
    return m.createExtractor({ modelUrl: '/models/default/', backend: 'cpu' }).then(() => null, (e) => e.message);
  });
  assert.match(error ?? '', /tokenizer\.json is corrupt or incomplete: sha256/);
  await context.close();
});
