// Document-extraction benchmark (not a test): a 10,000-word document (FewRel 1.0 val sentences,
// unmarked, one after another) extracted end to end with the example support set, in headless
// Chromium on the CPU engine (one wasm thread) and natively with `tkre extract` (one pass per
// sentence, and one pass per pair with markers for comparison). Prints a table and writes
// reports/bench-extract.json.
//   node bench/extract.js       (after scripts/dev/build-wasm.sh; TKRE_BENCH_WORDS=10000)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { ROOT, MODEL_DIR, TKRE, startServer, launchBrowser } from '../tests/browser/harness.js';
import { fewrelSentences } from './sentences.js';

const WORDS = Number(process.env.TKRE_BENCH_WORDS ?? 10000);
const SUPPORT = path.join(ROOT, 'examples/support_set.json');

function documentOf(words) {
  const sentences = fewrelSentences(2000, { marked: false });
  const out = [];
  let count = 0;
  for (const s of sentences) {
    if (count >= words) break;
    out.push(s);
    count += s.split(/\s+/).length;
  }
  return { text: out.join(' '), words: count, sentences: out.length };
}

function native(file, marking) {
  const started = process.hrtime.bigint();
  const run = spawnSync(TKRE, ['extract', '--model', MODEL_DIR, '--support', SUPPORT, '--input', file, '--quiet', '--marking', marking],
    { encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (run.status !== 0) throw new Error(`tkre extract failed: ${run.stderr}`);
  const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const pairs = lines.reduce((n, l) => n + l.mentions.length * (l.mentions.length - 1), 0);
  return { seconds, sentences: lines.length, pairs, triples: lines.reduce((n, l) => n + l.triples.length, 0) };
}

const doc = documentOf(WORDS);
const file = path.join(mkdtempSync(path.join(tmpdir(), 'tkre-bench-extract-')), 'document.txt');
writeFileSync(file, doc.text);

const server = await startServer();
const browser = await launchBrowser();
let browserRow;
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench/browser.html`);
  const support = readFileSync(SUPPORT, 'utf8');
  browserRow = await page.evaluate(async ({ text, support }) => {
    const m = await import('/pkg/src/index.js');
    const x = await m.createExtractor({ modelUrl: '/models/default/', backend: 'cpu' });
    await x.loadSupportSet(support);
    await x.extract('Marie Curie was born in Warsaw.'); // warm-up: the unmarked support set is encoded once
    const started = performance.now();
    const found = await x.extract(text);
    const seconds = (performance.now() - started) / 1000;
    const heap = performance.memory?.usedJSHeapSize ?? null;
    await x.dispose();
    return { seconds, sentences: found.sentences.length, mentions: found.mentions.length, triples: found.triples.length, jsHeapBytes: heap };
  }, { text: doc.text, support });
  await page.close();
} finally {
  await browser.close();
  server.stop();
}

const unmarked = native(file, 'unmarked');
const marked = native(file, 'marked');
const report = {
  date: new Date().toISOString(),
  machine: `${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}`,
  document: { words: doc.words, sentences: unmarked.sentences, characters: Array.from(doc.text).length, pairs: unmarked.pairs },
  model: MODEL_DIR,
  rows: [
    { engine: 'browser, CPU engine (wasm, 1 thread), one pass per sentence', seconds: browserRow.seconds, triples: browserRow.triples, jsHeapBytes: browserRow.jsHeapBytes },
    { engine: 'native tkre extract (burn, 2 threads), one pass per sentence, model load included', seconds: unmarked.seconds, triples: unmarked.triples },
    { engine: 'native tkre extract (burn, 2 threads), one pass per pair with markers, model load included', seconds: marked.seconds, triples: marked.triples },
  ],
  target: 'under 30 s in the browser on a 2-core machine (issue: document extraction)',
};
writeFileSync(path.join(ROOT, 'reports/bench-extract.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(`${doc.words} words, ${unmarked.sentences} sentences, ${unmarked.pairs} ordered pairs of mentions`);
console.log('| engine | seconds | triples |\n|---|---|---|');
for (const r of report.rows) console.log(`| ${r.engine} | ${r.seconds.toFixed(1)} | ${r.triples} |`);
