// Soak benchmark (not a test): 10,000 classify calls and 1,000 support-set edits (an example
// added, then removed) through the Worker wrapper in headless Chromium, on the CPU backend.
// Reports the wasm memory and the browser's resident memory (every Chromium process, from
// /proc) after loading, after warm-up and at the end, the errors (expected: none) and the
// time. Prints a table and writes reports/soak-browser.json.
//   node bench/soak.js [CLASSIFY EDITS]      (after scripts/dev/build-wasm.sh and scripts/dev/web-model.sh)
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launchBrowser } from '../tests/browser/harness.js';

const CLASSIFY = Number(process.argv[2] ?? 10000);
const EDITS = Number(process.argv[3] ?? 1000);

/** Resident memory of every Chromium process (the browser, its renderers and workers). */
function chromiumRssBytes() {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!/^Name:\s+(chrom|headless)/m.test(status)) continue;
      const rss = status.match(/^VmRSS:\s+(\d+) kB/m);
      if (rss) total += Number(rss[1]) * 1024;
    } catch {
      // the process ended while being read
    }
  }
  return total;
}

const support = JSON.parse(readFileSync(path.join(ROOT, 'examples/support_set.json'), 'utf8'));
const queries = readFileSync(path.join(ROOT, 'examples/queries.txt'), 'utf8').split('\n').filter((l) => l.trim());
const server = await startServer();
const browser = await launchBrowser();
let result;
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench/browser.html`);
  await page.evaluate(async ({ support }) => {
    const m = await import('/pkg/src/index.js');
    window.x = await m.createWorkerExtractor({ modelUrl: '/models/default/', backend: 'cpu' });
    await window.x.loadSupportSet(support);
  }, { support });
  const loaded = { wasm: (await page.evaluate(() => window.x.memoryUsage())).wasmBytes, rss: chromiumRssBytes() };
  // The run, in slices so that memory can be read between them.
  const slices = 10;
  const marks = [];
  const started = Date.now();
  let errors = 0;
  for (let s = 0; s < slices; s++) {
    errors += await page.evaluate(
      async ({ queries, n, edits, offset }) => {
        let failed = 0;
        const extra = '[E1]Ada Lovelace[/E1] worked with [E2]Charles Babbage[/E2] on the Analytical Engine.';
        const every = Math.max(1, Math.floor(n / Math.max(1, edits)));
        let done = 0;
        for (let i = 0; i < n; i++) {
          try {
            await window.x.classify(queries[(offset + i) % queries.length]);
          } catch {
            failed++;
          }
          if (i % every === 0 && done < edits) {
            done++;
            try {
              const key = (await window.x.relations())[0].key;
              await window.x.addExamples(key, [extra]);
              const count = (await window.x.relations())[0].examples;
              await window.x.removeExample(key, count - 1);
            } catch {
              failed++;
            }
          }
        }
        return failed;
      },
      { queries, n: Math.floor(CLASSIFY / slices), edits: Math.floor(EDITS / slices), offset: s },
    );
    marks.push({ after: ((s + 1) * CLASSIFY) / slices, wasm: (await page.evaluate(() => window.x.memoryUsage())).wasmBytes, rss: chromiumRssBytes() });
    process.stderr.write(`  ${marks.at(-1).after} classifications: wasm ${(marks.at(-1).wasm / 2 ** 20).toFixed(1)} MiB, RSS ${(marks.at(-1).rss / 2 ** 20).toFixed(0)} MiB\n`);
  }
  const seconds = (Date.now() - started) / 1000;
  await page.evaluate(() => window.x.dispose());
  result = { loaded, marks, errors, seconds };
} finally {
  await browser.close();
  server.stop();
}

const mib = (b) => (b / 2 ** 20).toFixed(1);
const warm = result.marks[0];
const end = result.marks.at(-1);
console.log('| classifications | edits | errors | seconds | wasm MiB: loaded / after 1st slice / end | Chromium RSS MiB: loaded / after 1st slice / end |');
console.log('|---|---|---|---|---|---|');
console.log(`| ${CLASSIFY} | ${EDITS} | ${result.errors} | ${result.seconds.toFixed(0)} | ${mib(result.loaded.wasm)} / ${mib(warm.wasm)} / ${mib(end.wasm)} | ${mib(result.loaded.rss)} / ${mib(warm.rss)} / ${mib(end.rss)} |`);
writeFileSync(
  path.join(ROOT, 'reports/soak-browser.json'),
  `${JSON.stringify({ command: `node bench/soak.js ${CLASSIFY} ${EDITS}`, date: new Date().toISOString().slice(0, 10), backend: 'cpu (Worker)', classifications: CLASSIFY, edits: EDITS, errors: result.errors, seconds: result.seconds, loaded: result.loaded, marks: result.marks }, null, 1)}\n`,
);
process.exit(result.errors === 0 ? 0 : 1);
