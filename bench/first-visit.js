// What a first visit to the demo page downloads, as served by scripts/dev/serve.py (which
// gzips wasm, JavaScript and JSON for a client that accepts it, as static hosts do; the
// model's weights go as they are): every response of a cold load in headless Chromium, its
// body bytes on the wire, grouped. Prints a table and writes reports/first-visit.json.
//   node bench/first-visit.js        (after scripts/dev/build-wasm.sh and scripts/dev/web-model.sh)
import { writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, startServer, launchBrowser } from '../tests/browser/harness.js';

const server = await startServer();
const browser = await launchBrowser();
const pending = [];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('requestfinished', (request) => {
    pending.push((async () => {
      const [sizes, response] = await Promise.all([request.sizes(), request.response()]);
      return {
        path: new URL(request.url()).pathname,
        bytes: sizes.responseBodySize,
        encoding: response?.headers()['content-encoding'] ?? null,
      };
    })());
  });
  await page.goto(`${server.url}?backend=cpu`);
  await page.evaluate(() => window.tkreDemo.ready);
  await context.close();
} finally {
  await browser.close();
  server.stop();
}
const responses = await Promise.all(pending);
const group = (p) => (p.endsWith('.wasm') ? 'wasm' : p.startsWith('/models/') ? 'model' : p.endsWith('.js') ? 'javascript' : 'page');
const groups = {};
for (const r of responses) {
  const g = (groups[group(r.path)] ??= { bytes: 0, files: [] });
  g.bytes += r.bytes;
  g.files.push(r);
}
const total = responses.reduce((s, r) => s + r.bytes, 0);
const report = {
  date: new Date().toISOString().slice(0, 10),
  command: 'node bench/first-visit.js',
  served_by: 'scripts/dev/serve.py (gzip for wasm, JavaScript, JSON; weights uncompressed)',
  wasm_file_bytes: statSync(path.join(ROOT, 'pkg/wasm/tkre_bg.wasm')).size,
  total_bytes: total,
  groups,
};
writeFileSync(path.join(ROOT, 'reports/first-visit.json'), JSON.stringify(report, null, 2) + '\n');
console.log('| what | MB on the wire |');
console.log('|---|---|');
for (const [name, g] of Object.entries(groups)) console.log(`| ${name} | ${(g.bytes / 1e6).toFixed(2)} |`);
console.log(`| total | ${(total / 1e6).toFixed(2)} |`);
