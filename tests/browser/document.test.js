// The demo's Document view: a pasted or opened document extracted on the page, checked against
// the native `tkre extract` on the same text; corrections, threshold, exports and odd inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, MODEL_DIR, TKRE, demoServerAndBrowser, openDemo, recordRequests } from './harness.js';

const shared = demoServerAndBrowser();
const SUPPORT = path.join(ROOT, 'examples/support_set.json');
const DOCUMENT = 'Marie Curie was born in Warsaw in 1867. She worked for the University of Paris.\n\n' +
  'Dr. J. Smith wrote the novel Silent Rivers. Zoë Ünal was born in Köln, and Berlin is the capital of Germany.';

/** `tkre extract` on `text` at `threshold`: the sentences it writes (JSON lines). */
function nativeExtract(text, threshold, extra = []) {
  const result = spawnSync(TKRE, ['extract', '--model', MODEL_DIR, '--support', SUPPORT, '--threshold', String(threshold), '--quiet', ...extra],
    { input: text, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

const tripleKey = (t) => `${t.head.start}-${t.head.end}>${t.tail.start}-${t.tail.end}:${t.relation}`;
const byKey = (triples) => [...triples].sort((a, b) => tripleKey(a).localeCompare(tripleKey(b)));

/** Waits for the page's extraction or its message (both cleared before the click); returns both. */
async function extracted(page) {
  await page.waitForFunction(() => window.tkreDemo.extraction !== null
    || document.getElementById('document-error').textContent !== '', null, { timeout: 120_000 });
  return page.evaluate(() => ({ extraction: window.tkreDemo.extraction, error: document.getElementById('document-error').textContent }));
}

async function extractOnPage(page, text) {
  await page.fill('#document', text);
  await page.evaluate(() => { window.tkreDemo.extraction = null; document.getElementById('document-error').textContent = ''; });
  await page.click('#extract');
  return extracted(page);
}

/** Marks the first `phrase` of DOCUMENT as a mention by selecting it in the document box; returns
 *  its span (code points) and the extraction that follows. */
async function markBySelection(page, phrase) {
  const at = DOCUMENT.indexOf(phrase);
  await page.$eval('#document', (area, [s, e]) => { area.focus(); area.setSelectionRange(s, e); }, [at, at + phrase.length]);
  await page.evaluate(() => { window.tkreDemo.extraction = null; });
  await page.click('#add-mention');
  const result = await extracted(page);
  assert.equal(result.error, '');
  const points = (text) => Array.from(text).length;
  return { start: points(DOCUMENT.slice(0, at)), end: points(DOCUMENT.slice(0, at + phrase.length)), result };
}

test('a file opened in the Document view is extracted on the page like tkre extract, with no request', async () => {
  const { page, errors } = await openDemo(shared.browser, shared.server.url, '?backend=cpu');
  const requests = recordRequests(page);
  await page.evaluate(() => { window.tkreDemo.extraction = null; });
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#open-document-button')]);
  await chooser.setFiles({ name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.from(DOCUMENT) });
  const { extraction, error } = await extracted(page);
  assert.equal(error, '');
  assert.deepEqual(requests, [], 'reading and extracting a local file requests nothing');
  assert.equal(await page.inputValue('#document'), DOCUMENT);

  // The table shows the pairs at the slider's threshold: the triples tkre extract finds there.
  const native = nativeExtract(DOCUMENT, extraction.threshold);
  assert.deepEqual(extraction.sentences, native.map((s) => s.sentence));
  assert.deepEqual(extraction.mentions, native.flatMap((s) => s.mentions));
  const nativeTriples = byKey(native.flatMap((s) => s.triples));
  const shown = byKey(extraction.visible);
  assert.ok(shown.length > 0, 'the example document has relations above the threshold');
  assert.deepEqual(shown.map(tripleKey), nativeTriples.map(tripleKey));
  for (const [i, t] of shown.entries()) {
    assert.ok(Math.abs(t.similarity - nativeTriples[i].similarity) < 1e-3, `${tripleKey(t)}: ${t.similarity} vs ${nativeTriples[i].similarity}`);
  }
  assert.equal(await page.locator('#triples tbody tr').count(), shown.length);
  const scores = extraction.visible.map((t) => t.score);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'the table is sorted by score');
  assert.equal(await page.locator('#mentions-view .mention').count(), extraction.mentions.length);

  // A click on a triple shows its sentence with both entities highlighted.
  await page.locator('#triples tbody tr').first().click();
  const top = extraction.visible[0];
  assert.equal(await page.textContent('#triple-sentence .e1'), top.head.text);
  assert.equal(await page.textContent('#triple-sentence .e2'), top.tail.text);
  assert.equal(await page.textContent('#triple-sentence'), Array.from(DOCUMENT).slice(top.sentence.start, top.sentence.end).join(''));

  // The slider filters the same extraction: at a higher threshold, the triples tkre extract keeps there.
  const higher = Math.min(0.95, Math.max(...extraction.visible.map((t) => t.similarity)) - 0.005);
  await page.$eval('#document-threshold', (input, value) => {
    input.value = String(value);
    input.dispatchEvent(new Event('input'));
  }, higher);
  const filtered = await page.evaluate(() => window.tkreDemo.extraction);
  const nativeHigher = nativeExtract(DOCUMENT, filtered.threshold).flatMap((s) => s.triples);
  assert.deepEqual(byKey(filtered.visible).map(tripleKey), byKey(nativeHigher).map(tripleKey));
  assert.ok(filtered.visible.length >= 1 && filtered.visible.length < shown.length + 1);

  // Exports: CSV with a header and a row per shown triple; JSON with the same triples.
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csvText = readFileSync(await csv.path(), 'utf8');
  const lines = csvText.trim().split('\r\n');
  assert.equal(lines[0], 'head,head_start,head_end,relation,tail,tail_start,tail_end,score,similarity,sentence_start,sentence_end,sentence');
  assert.equal(lines.length, filtered.visible.length + 1);
  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const exported = JSON.parse(readFileSync(await json.path(), 'utf8'));
  assert.deepEqual(exported.triples.map(tripleKey), filtered.visible.map(tripleKey));
  assert.equal(exported.threshold, filtered.threshold);
  assert.deepEqual(requests, [], 'exports are made on the page');
  assert.deepEqual(errors, []);
  await page.close();
});

test('mentions can be removed and added by selection, and the extraction follows them', async () => {
  const { page, errors } = await openDemo(shared.browser, shared.server.url, '?backend=cpu');
  const first = await extractOnPage(page, DOCUMENT);
  assert.equal(first.error, '');
  const mentions = first.extraction.mentions;
  // Remove the head of the best triple: none of its pairs remain.
  const head = first.extraction.visible[0].head;
  await page.evaluate(() => { window.tkreDemo.extraction = null; });
  await page.getByRole('button', { name: `Remove mention ${head.text}` }).first().click();
  const removed = await extracted(page);
  assert.equal(removed.error, '');
  assert.equal(removed.extraction.mentions.length, mentions.length - 1);
  const uses = (t, m) => [t.head, t.tail].some((e) => e.start === m.start && e.end === m.end);
  assert.ok(!removed.extraction.triples.some((t) => uses(t, head)));
  // The same mentions given to tkre extract give the same pairs.
  const kept = removed.extraction.mentions.map(({ start, end }) => ({ start, end }));
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'tkre-mentions-')), 'mentions.json');
  writeFileSync(file, JSON.stringify(kept));
  const native = nativeExtract(DOCUMENT, -1, ['--mentions', file, '--no-proposer']);
  assert.deepEqual(byKey(removed.extraction.triples).map(tripleKey), byKey(native.flatMap((s) => s.triples)).map(tripleKey));

  // Mark a word the proposer missed ("novel") by selecting it in the document box.
  const word = 'novel';
  const { start, end, result: added } = await markBySelection(page, word);
  assert.ok(added.extraction.mentions.some((m) => m.start === start && m.end === end && m.text === word));
  assert.ok(added.extraction.triples.some((t) => uses(t, { start, end })), 'the new mention is paired');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a mention marked inside another is shown nested, removed alone, and never paired with it', async () => {
  const { page, errors } = await openDemo(shared.browser, shared.server.url, '?backend=cpu');
  assert.equal((await extractOnPage(page, DOCUMENT)).error, '');
  const outer = await markBySelection(page, 'University of Paris');
  const inner = await markBySelection(page, 'Paris');
  const { mentions, triples } = inner.result.extraction;
  const has = (m) => mentions.some((x) => x.start === m.start && x.end === m.end);
  assert.ok(has(outer) && has(inner), 'marking "Paris" keeps "University of Paris" around it');
  assert.equal(await page.textContent('#mentions-view .mention .mention'), 'Paris');
  assert.equal(await page.locator('#mentions-view .mention').count(), mentions.length);
  const same = (a, m) => a.start === m.start && a.end === m.end;
  assert.ok(!triples.some((t) => (same(t.head, outer) && same(t.tail, inner)) || (same(t.head, inner) && same(t.tail, outer))),
    'a mention is never paired with one inside it');
  // A click on the inner mention removes it and not the one around it.
  await page.evaluate(() => { window.tkreDemo.extraction = null; });
  await page.getByRole('button', { name: 'Remove mention Paris', exact: true }).click();
  const removed = await extracted(page);
  assert.equal(removed.error, '');
  assert.ok(removed.extraction.mentions.some((m) => same(m, outer)));
  assert.ok(!removed.extraction.mentions.some((m) => same(m, inner)));
  assert.deepEqual(errors, []);
  await page.close();
});

test('odd documents in the Document view: empty, binary junk, no sentence boundaries, and a cancelled 1 MB text', async () => {
  const { page, errors } = await openDemo(shared.browser, shared.server.url, '?backend=cpu', { width: 390, height: 844 });
  assert.match((await extractOnPage(page, '   ')).error, /empty/);
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#open-document-button')]);
  await page.evaluate(() => { document.getElementById('document-error').textContent = ''; });
  const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
  await chooser.setFiles({ name: 'photo.txt', mimeType: 'text/plain', buffer: junk });
  await page.waitForFunction(() => document.getElementById('document-error').textContent !== '');
  assert.match(await page.textContent('#document-error'), /photo\.txt: .*does not look like text/);

  const run = 'marie curie was born in warsaw and worked in paris with pierre curie '.repeat(40);
  const unbroken = await extractOnPage(page, run);
  assert.equal(unbroken.error, '');
  assert.ok(unbroken.extraction.sentences.length >= 2, 'a text without boundaries is cut into pieces');
  assert.ok(unbroken.extraction.sentences.every((s) => s.end - s.start <= 600));

  // About 1 MB, cancelled after half a second: the page stops within a second and stays usable.
  const long = 'Marie Curie was born in Warsaw and later moved to the city of Paris. '.repeat(15000);
  await page.fill('#document', long);
  await page.evaluate(() => { document.getElementById('document-error').textContent = ''; });
  await page.click('#extract');
  await page.waitForSelector('#cancel-extract:not([hidden])');
  await page.waitForTimeout(500);
  const cancelled = Date.now();
  await page.click('#cancel-extract');
  await page.waitForFunction(() => document.getElementById('document-error').textContent !== '', null, { timeout: 5000 });
  const ms = Date.now() - cancelled;
  assert.match(await page.textContent('#document-error'), /cancelled/);
  assert.ok(ms < 1000, `cancel took ${ms} ms`);
  const after = await extractOnPage(page, DOCUMENT);
  assert.equal(after.error, '');
  // Phone-sized: nothing wider than the screen.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling on a phone');
  await page.screenshot({ path: path.join(ROOT, 'reports/screenshots/demo-document-phone.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
