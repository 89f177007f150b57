// Relation text in the browser package: text-only (zero-shot) and text + example relations
// through the Worker wrapper on WebGPU and CPU, scored like native `tkre classify` on the same
// support set; the support-set JSON against its schema; bad text fields as clear rejections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { ROOT, nativeClassify, demoServerAndBrowser } from './harness.js';

const SIMILARITY_TOLERANCE = 1e-3;
const schema = JSON.parse(readFileSync(path.join(ROOT, 'docs/support-set.schema.json'), 'utf8'));
const validate = new Ajv2020({ allErrors: true }).compile(schema);
const readJson = (file) => JSON.parse(readFileSync(path.join(ROOT, file), 'utf8'));

const queries = [
  '[E1]Albert Einstein[/E1] was born in [E2]Ulm[/E2].',
  '[E1]Sundar Pichai[/E1] is the chief executive officer of [E2]Google[/E2].',
  '[E2]War and Peace[/E2] was written by [E1]Leo Tolstoy[/E1].',
];

const shared = demoServerAndBrowser();

test('support sets validate against docs/support-set.schema.json; bad ones do not', () => {
  for (const file of ['examples/support_set.json', 'tests/fixtures/support_set_v1.json']) {
    assert.ok(validate(readJson(file)), `${file}: ${JSON.stringify(validate.errors)}`);
  }
  const bad = {
    'no relations': { relations: [] },
    'neither text nor examples': { version: 2, relations: [{ key: 'a', examples: [] }] },
    'no key and no name': { version: 2, relations: [{ description: 'x', examples: [] }] },
    'empty name': { version: 2, relations: [{ key: 'a', name: '' }] },
    'name of the wrong type': { version: 2, relations: [{ key: 'a', name: 5 }] },
    '100 kB description': { version: 2, relations: [{ key: 'a', description: 'x'.repeat(100_000) }] },
    'unknown version': { version: 3, relations: [{ name: 'a' }] },
    'unmarked example': { relations: [{ name: 'a', examples: ['no markers'] }] },
  };
  for (const [what, set] of Object.entries(bad)) assert.equal(validate(set), false, what);
});

for (const backend of ['webgpu', 'cpu']) {
  test(`text-only and text + example relations in the worker equal native tkre classify (${backend})`, async () => {
    const page = await shared.browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${shared.server.url}?backend=cpu`);
    await page.evaluate(() => window.tkreDemo.ready);
    const result = await page.evaluate(async ({ backend, queries }) => {
      const m = await import('/pkg/src/index.js');
      const x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend });
      const rejected = async (call) => call.then(() => 'resolved', (e) => e.message);
      const out = { used: x.backend };
      // Text alone: zero-shot.
      out.zeroCount = await x.addRelation('P19', { name: 'place of birth', description: 'the place where a person was born' });
      out.exampleCount = await x.addRelation('P108', { name: 'employer', examples: '[E1]Tim Cook[/E1] works for [E2]Apple[/E2].' });
      await x.addRelation('P50', { description: 'the writer of a book or other written work' });
      out.before = await x.classify(queries);
      out.saved = await x.saveSupportSet();
      // Changing the text changes the scores (encoded once, at the change).
      await x.setRelationText('P19', { name: 'place of birth', description: 'the city or town where someone was born' });
      await x.setRelationText('P108', { name: 'employer', description: 'the organisation a person works for' });
      out.afterText = await x.classify(queries[0]);
      out.savedAfterText = await x.saveSupportSet();
      out.relations = await x.relations();
      // Bad input is a rejection with a message; the worker keeps working.
      out.errors = {
        duplicate: await rejected(x.addRelation('P19', { name: 'again' })),
        nothing: await rejected(x.addRelation('empty', {})),
        huge: await rejected(x.addRelation('big', { description: 'x'.repeat(100_000) })),
        wrongType: await rejected(x.addRelation('typed', { name: 5 })),
        misspelt: await rejected(x.addRelation('typo', { desciption: 'x' })),
        emptyName: await rejected(x.setRelationText('P108', { name: '   ' })),
        textOnlyLosesText: await rejected(x.setRelationText('P19', null)),
        unknown: await rejected(x.setRelationText('nope', { name: 'x' })),
      };
      out.stillWorks = await x.classify(queries[0]);
      await x.dispose();
      return out;
    }, { backend, queries });
    assert.equal(result.used, backend);
    assert.equal(result.zeroCount, 0);
    assert.equal(result.exampleCount, 1);

    // The saved set is valid, and native tkre classify on it gives the same scores.
    const saved = JSON.parse(result.saved);
    assert.ok(validate(saved), JSON.stringify(validate.errors));
    assert.equal(saved.version, 2);
    assert.deepEqual(saved.relations.map((r) => [r.key, r.name ?? null, r.examples.length]),
      [['P19', 'place of birth', 0], ['P108', 'employer', 1], ['P50', null, 0]]);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tkre-text-'));
    const file = path.join(dir, 'set.json');
    writeFileSync(file, result.saved);
    const native = nativeClassify(queries, file);
    for (const [i, prediction] of result.before.entries()) {
      assert.deepEqual(prediction.ranked.map((r) => r.relation), native[i].ranked.map((r) => r.relation), queries[i]);
      for (const [j, score] of prediction.ranked.entries()) {
        assert.ok(Math.abs(score.similarity - native[i].ranked[j].similarity) < SIMILARITY_TOLERANCE,
          `${queries[i]}: ${score.relation} ${score.similarity} vs native ${native[i].ranked[j].similarity}`);
      }
      // The default model's calibration puts a threshold in force: "no relation" is one
      // more class, and all of them sum to 1, as natively.
      const total = prediction.ranked.reduce((sum, r) => sum + r.probability, prediction.noneProbability);
      assert.ok(Math.abs(total - 1) < 1e-4, `${queries[i]}: probabilities sum to ${total}`);
      assert.ok(Math.abs(prediction.noneProbability - native[i].none_probability) < 1e-3, queries[i]);
    }
    // Text-only relations win the queries they describe.
    assert.equal(result.before[0].ranked[0].relation, 'P19');
    assert.equal(result.before[2].ranked[0].relation, 'P50');

    // The new text moved P19's similarity, and native agrees on the changed set, relation by
    // relation.
    const sim = (p, key) => p.ranked.find((r) => r.relation === key).similarity;
    assert.ok(Math.abs(sim(result.afterText, 'P19') - sim(result.before[0], 'P19')) > 1e-3, 'setRelationText changed nothing');
    writeFileSync(file, result.savedAfterText);
    const nativeAfter = nativeClassify([queries[0]], file)[0];
    for (const key of ['P19', 'P108', 'P50']) {
      assert.ok(Math.abs(sim(result.afterText, key) - sim(nativeAfter, key)) < SIMILARITY_TOLERANCE, key);
    }

    assert.deepEqual(result.relations.map((r) => [r.key, r.name, r.examples]),
      [['P19', 'place of birth', 0], ['P108', 'employer', 1], ['P50', 'P50', 0]]);
    assert.equal(result.relations[1].description, 'the organisation a person works for');

    const e = result.errors;
    assert.match(e.duplicate, /"P19" already exists/);
    assert.match(e.nothing, /"empty" has no examples and no text/);
    assert.match(e.huge, /description has 100000 characters, more than 2000/);
    assert.match(e.wrongType, /addRelation takes .*invalid type/);
    assert.match(e.misspelt, /unknown field `desciption`/);
    assert.match(e.emptyName, /the name is empty/);
    assert.match(e.textOnlyLosesText, /"P19" has no examples, so it cannot lose its text/);
    assert.match(e.unknown, /unknown relation "nope"/);
    assert.equal(result.stillWorks.ranked[0].relation, 'P19');
    assert.deepEqual(errors, []);
    await page.close();
  });
}
