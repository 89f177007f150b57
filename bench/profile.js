// Where the browser's time goes (not a test): samples the page's CPU profile (Chrome DevTools
// Protocol, the same profiler as the Performance panel) while this package embeds sentences,
// and prints self time per function, most first, with the wasm function names. Needs a wasm
// built with its name section: `bash scripts/dev/build-wasm.sh --profiling` (then `bash
// scripts/dev/build-wasm.sh` again for the normal build).
//   node bench/profile.js
// Settings (environment): TKRE_PROFILE_BACKEND=cpu  TKRE_PROFILE_MODEL=base-fp32 (a folder of
// $TKRE_CACHE/web-models)  TKRE_PROFILE_LENGTH=fewrel|N (tokens)  TKRE_PROFILE_BATCH=1
// TKRE_PROFILE_CALLS=20  TKRE_PROFILE_TOP=40
import path from 'node:path';
import { startServer, launchBrowser } from '../tests/browser/harness.js';
import { fewrelSentences } from './sentences.js';

const env = process.env;
const BACKEND = env.TKRE_PROFILE_BACKEND ?? 'cpu';
const MODEL = env.TKRE_PROFILE_MODEL ?? 'base-fp32';
const LENGTH = env.TKRE_PROFILE_LENGTH ?? 'fewrel';
const BATCH = Number(env.TKRE_PROFILE_BATCH ?? 1);
const CALLS = Number(env.TKRE_PROFILE_CALLS ?? 20);
const TOP = Number(env.TKRE_PROFILE_TOP ?? 40);
const CACHE = env.TKRE_CACHE ?? path.join(env.HOME, '.cache/tkre');

let texts = fewrelSentences(CALLS * BATCH + BATCH, { marked: false });
if (LENGTH !== 'fewrel') {
  // N tokens, roughly: FewRel words, one word per token on average is close enough here.
  const words = texts.join(' ').split(' ');
  const many = Array.from({ length: Math.ceil((2 * Number(LENGTH)) / words.length) + 1 }, () => words).flat();
  texts = texts.map((_, i) => many.slice(i * 7, i * 7 + Number(LENGTH) - 2).join(' '));
}
process.env.TKRE_WEB_MODELS = path.join(CACHE, 'web-models');
const server = await startServer();
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench/browser.html`);
  await page.evaluate(
    async ({ BACKEND, MODEL, texts, BATCH }) => {
      const m = await import('/pkg/src/index.js');
      window.x = await m.createExtractor({ modelUrl: `/models/${MODEL}/`, backend: BACKEND, useCache: false, maxLength: 512 });
      // Warm-up: V8 first runs wasm through its baseline compiler and optimises hot functions
      // after some calls; profiling before that would blame the wrong code.
      for (let i = 0; i < 5; i++) await window.x.embed(texts.slice(0, BATCH));
    },
    { BACKEND, MODEL, texts, BATCH },
  );
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  await cdp.send('Profiler.start');
  const ms = await page.evaluate(
    async ({ texts, BATCH, CALLS }) => {
      const t = performance.now();
      for (let i = 1; i <= CALLS; i++) await window.x.embed(texts.slice(i * BATCH, (i + 1) * BATCH));
      return (performance.now() - t) / CALLS;
    },
    { texts, BATCH, CALLS },
  );
  const { profile } = await cdp.send('Profiler.stop');
  // Self time per node from the samples, summed by function name.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const name = byId.get(id).callFrame.functionName || `(${byId.get(id).callFrame.url.split('/').pop() || 'anonymous'})`;
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
  console.log(`${BACKEND} ${MODEL} length ${LENGTH} batch ${BATCH}: ${ms.toFixed(1)} ms per call (${CALLS} calls, profiled)`);
  console.log('| self ms per call | share | function |');
  console.log('|---|---|---|');
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`| ${(us / 1000 / CALLS).toFixed(2)} | ${((100 * us) / total).toFixed(1)}% | ${name.slice(0, 160)} |`);
  }
} finally {
  await browser.close();
  server.stop();
}
