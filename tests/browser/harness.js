// Shared by the browser tests: the demo server, headless Chromium (Debian's, driven by
// playwright-core) and the native `tkre` CLI for reference scores.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = process.env.TKRE_CACHE ?? path.join(process.env.HOME, '.cache/tkre');
export const MODEL_DIR = process.env.TKRE_WEB_MODEL ?? path.join(ROOT, 'models/default');
const TARGET = process.env.CARGO_TARGET_DIR ?? path.join(CACHE, 'target');
export const TKRE = path.join(TARGET, 'debug/tkre');
// Why this checkout has no threaded wasm (pkg/wasm-threads.missing, written by
// scripts/dev/build-wasm.sh when its toolchain cannot make one), or false when it has one.
// The tests that need the threaded build (threads, packing, tsc over its glue) skip with this
// reason; with neither the build nor the reason they run, and fail.
export const THREADS_MISSING = !existsSync(path.join(ROOT, 'pkg/wasm-threads/tkre.js')) && existsSync(path.join(ROOT, 'pkg/wasm-threads.missing'))
  ? `no threaded wasm build here: ${readFileSync(path.join(ROOT, 'pkg/wasm-threads.missing'), 'utf8').trim()}`
  : false;
// The comparison build (scripts/dev/build-wasm.sh --compare, burn's backends; about 40 minutes,
// not part of the test build): the tests that use it run only where it has been built.
export const COMPARE_BUILD = existsSync(path.join(ROOT, 'pkg/wasm-compare/tkre.js')) && existsSync(path.join(ROOT, 'pkg/wasm-compare/tkre_bg.wasm'));

// WebGPU on SwiftShader's Vulkan device: no GPU needed (see docs/browser.md).
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
  '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader',
];

/** Starts scripts/dev/serve.py on a free port; resolves to {url, stop}. */
export async function startServer(modelDir = MODEL_DIR) {
  const child = spawn('python3', [path.join(ROOT, 'scripts/dev/serve.py'), modelDir], {
    env: { ...process.env, PORT: '0', TKRE_SERVE_QUIET: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [chunk] = await once(child.stdout, 'data');
  const url = chunk.toString().trim().split('\n')[0];
  if (!url.startsWith('http://127.0.0.1:')) throw new Error(`server printed ${url}`);
  return { url, stop: () => child.kill() };
}

export async function launchBrowser(extraArgs = []) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** The URLs `page` requests from now on, as a live list (blob: and data: URLs fetch nothing). */
export function recordRequests(page) {
  const urls = [];
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith('blob:') && !url.startsWith('data:')) urls.push(url);
  });
  return urls;
}

/** Native scores: `tkre classify` on marked sentences with the same model and support set. */
export function nativeClassify(queries, supportSet = path.join(ROOT, 'examples/support_set.json'), modelDir = MODEL_DIR) {
  const result = spawnSync(TKRE, ['classify', '--model', modelDir, '--support', supportSet], {
    input: queries.join('\n') + '\n',
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`tkre classify failed: ${result.stderr}`);
  return result.stdout.trim().split('\n').map((line) => JSON.parse(line));
}

/** Native sentence embeddings: `tkre embed` with the same model. */
export function nativeEmbed(texts, modelDir = MODEL_DIR) {
  const result = spawnSync(TKRE, ['embed', '--model', modelDir], { input: texts.join('\n') + '\n', encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tkre embed failed: ${result.stderr}`);
  return result.stdout.trim().split('\n').map((line) => JSON.parse(line).embedding);
}

/** Opens the demo page and waits until the model and example set are ready. */
export async function openDemo(browser, url, query = '', viewport = { width: 1100, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${url}${query}`);
  try {
    await page.evaluate(() => window.tkreDemo.ready);
  } catch (e) {
    throw new Error(`demo page did not start: ${e.message}\npage errors: ${errors.join('\n')}`);
  }
  return { page, errors };
}

/** Types a query into the demo page, classifies, and returns the page's result. */
export async function classifyOnPage(page, marked) {
  await page.fill('#query', marked);
  await page.evaluate(() => { window.tkreDemo.lastResult = null; });
  await page.click('#classify');
  await page.waitForFunction(() => window.tkreDemo.lastResult !== null || document.getElementById('error').textContent !== '');
  const error = await page.textContent('#error');
  if (error) throw new Error(`page error: ${error}`);
  return page.evaluate(() => window.tkreDemo.lastResult);
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/**
 * A plain static server on a free port (a host other than the demo's: no COOP/COEP, no
 * compression): `routes` maps URL prefixes to directories, `headers` go on every answer.
 * Resolves to the node server; `server.address().port` is its port.
 */
export function serveStatic(routes, headers = {}) {
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [prefix, dir] = Object.entries(routes).find(([p]) => pathname.startsWith(p)) ?? [];
    if (!dir) {
      res.writeHead(404, headers).end();
      return;
    }
    const rel = path.normalize(pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, '');
    let file = path.join(dir, rel);
    if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404, headers).end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * The demo server and Chromium for one test file: started before its tests, stopped after.
 * Returns an object whose `server` and `browser` are set once they are up.
 */
export function demoServerAndBrowser() {
  const shared = { server: null, browser: null };
  before(async () => {
    shared.server = await startServer();
    shared.browser = await launchBrowser();
  });
  after(async () => {
    await shared.browser?.close();
    shared.server?.stop();
  });
  return shared;
}

/**
 * Runs a benchmark script (`bench/NAME.js`) with its settings: `PREFIX_KEY` environment
 * variables, and `PREFIX_OUT` pointed at a temporary file. Returns its JSON report and the
 * table it printed; fails the test if the script fails.
 * @param {string} script @param {string} prefix @param {Record<string, string>} settings
 */
export function runBenchmark(script, prefix, settings) {
  const dir = mkdtempSync(path.join(tmpdir(), 'tkre-bench-'));
  const out = path.join(dir, 'report.json');
  const env = { ...process.env, [`${prefix}_OUT`]: out };
  for (const [k, v] of Object.entries(settings)) env[`${prefix}_${k}`] = v;
  const run = spawnSync('node', [path.join(ROOT, script)], { env, encoding: 'utf8' });
  try {
    if (run.status !== 0) throw new Error(`${script} failed:\n${run.stderr.slice(-4000)}`);
    return { report: JSON.parse(readFileSync(out, 'utf8')), table: run.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
