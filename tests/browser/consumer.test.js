// A new user's app, outside the repository: the two packages packed as they would be
// published, installed from their tarballs, and bundled by Vite (build, and its dev server)
// and by webpack 5. The app gives no modelUrl: each build must load the default model from
// tkre-web-model-default and classify in Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, THREADS_MISSING, launchBrowser, serveStatic } from './harness.js';

let app;
let browser;
const cleanups = [];

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

before(async () => {
  if (THREADS_MISSING) return; // prepack refuses: a published package needs both builds
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tkre-consumer-'));
  // npm pack runs each package's prepack (the wasm check, the licence copy).
  const tarballs = ['pkg', 'models/default'].map((p) =>
    path.join(dir, run('npm', ['pack', '--silent', '--pack-destination', dir], path.join(ROOT, p)).trim().split('\n').at(-1)));
  app = path.join(dir, 'app');
  cpSync(path.join(ROOT, 'tests/consumer'), app, { recursive: true, filter: (f) => !/node_modules|dist/.test(f) });
  run('npm', ['ci', '--no-audit', '--no-fund', '--silent'], app);
  run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--silent', ...tarballs], app);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const cleanup of cleanups) cleanup();
});

/** Opens the app at `url` and checks its answer: the default model, place of birth. */
async function check(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}?backend=cpu`);
  const result = await page.evaluate(() => window.consumerResult);
  assert.equal(result.backend, 'cpu');
  assert.match(result.model, /relation stage/, 'the default model, from its package');
  assert.equal(result.prediction.ranked[0].relation, 'place of birth');
  const total = result.prediction.ranked.reduce((s, r) => s + r.probability, result.prediction.noneProbability);
  assert.ok(Math.abs(total - 1) < 1e-4, `probabilities and noneProbability sum to ${total}`);
  assert.deepEqual(errors, []);
  await page.close();
}

test('Vite build of an app that installed the packed packages', { skip: THREADS_MISSING }, async () => {
  run('npx', ['vite', 'build', '--logLevel', 'warn'], app);
  const server = await serveStatic({ '/': path.join(app, 'dist') });
  cleanups.push(() => server.close());
  await check(`http://127.0.0.1:${server.address().port}/`);
});

test('Vite dev server of the same app', { skip: THREADS_MISSING }, async () => {
  // Its own process group, ended whole: a server left behind would keep this test file alive.
  const dev = spawn(path.join(app, 'node_modules/.bin/vite'), ['--host', '127.0.0.1', '--port', '0'], {
    cwd: app,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  cleanups.push(() => {
    try {
      process.kill(-dev.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  });
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`vite dev did not start: ${seen}`)), 60000);
    const read = (chunk) => {
      seen += chunk.toString();
      // eslint-disable-next-line no-control-regex
      const match = seen.replace(/\x1b\[[0-9;]*m/g, '').match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (match) {
        clearTimeout(timer);
        resolve(match[0]);
      }
    };
    dev.stdout.on('data', read);
    dev.stderr.on('data', read);
  });
  await check(url);
});

test('webpack 5 build of the same app', { skip: THREADS_MISSING }, async () => {
  run('npx', ['webpack', '--config', 'webpack.config.js'], app);
  copyFileSync(path.join(app, 'index-webpack.html'), path.join(app, 'dist-webpack/index.html'));
  const server = await serveStatic({ '/': path.join(app, 'dist-webpack') });
  cleanups.push(() => server.close());
  await check(`http://127.0.0.1:${server.address().port}/`);
});
