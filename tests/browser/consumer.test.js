// The npm consumer: tests/consumer is a tiny app that depends on the package (file:../../pkg)
// and the default model package (file:../../models/default), bundled by Vite, the way users
// ship it. With no modelUrl it must build, load the default model and classify in Chromium.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT, launchBrowser } from './harness.js';

const APP = path.join(ROOT, 'tests/consumer');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

function serve(routes) {
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [prefix, dir] = Object.entries(routes).find(([p]) => pathname.startsWith(p)) ?? [];
    const rel = path.normalize(pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, '');
    let file = path.join(dir, rel);
    if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let server;
let browser;
after(async () => {
  await browser?.close();
  server?.close();
});

test('a Vite app that imports tkre-web builds and classifies', async () => {
  const install = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--silent'], { cwd: APP, encoding: 'utf8' });
  assert.equal(install.status, 0, install.stderr);
  const build = spawnSync('npx', ['vite', 'build', '--logLevel', 'warn'], { cwd: APP, encoding: 'utf8' });
  assert.equal(build.status, 0, `${build.stdout}\n${build.stderr}`);

  // Only the built app: the app gives no modelUrl, so the default model must come from the
  // tkre-web-model-default package, copied into the bundle by Vite.
  server = await serve({ '/': path.join(APP, 'dist') });
  const { port } = server.address();
  browser = await launchBrowser();
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${port}/?backend=cpu`);
  const result = await page.evaluate(() => window.consumerResult);
  assert.equal(result.backend, 'cpu');
  assert.match(result.model, /relation stage/, 'the default model, from its package');
  assert.equal(result.prediction.ranked[0].relation, 'place of birth');
  const total = result.prediction.ranked.reduce((s, r) => s + r.probability, result.prediction.noneProbability);
  assert.ok(Math.abs(total - 1) < 1e-4, `probabilities and noneProbability sum to ${total}`);
  assert.deepEqual(errors, []);
});
