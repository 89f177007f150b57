// Where WebGPU time goes (not a test): GPU timestamps around every compute dispatch while one
// side embeds one sentence, summed per kernel, most first. Chromium's timestamp queries inside
// passes (`--enable-dawn-features=allow_unsafe_apis`) are written by wrapping the page's
// WebGPU API before either side loads, so the same probe measures this package and
// transformers.js (ONNX Runtime Web's kernels carry their operator names as labels).
//   node bench/gpu-profile.js                     # this package, backend "webgpu"
//   TKRE_GPU_PROFILE_SIDE=burn-webgpu node bench/gpu-profile.js   # burn's WebGPU backend
//   TKRE_GPU_PROFILE_SIDE=transformers.js node bench/gpu-profile.js   # after scripts/setup/onnx.sh
// Settings: TKRE_GPU_PROFILE_MODEL=base-fp32 (a folder of $TKRE_CACHE/web-models)
// TKRE_GPU_PROFILE_LENGTH=fewrel|N (tokens, roughly)  TKRE_GPU_PROFILE_TOP=20
import path from 'node:path';
import { startServer, launchBrowser } from '../tests/browser/harness.js';
import { fewrelSentences } from './sentences.js';

const env = process.env;
const SIDE = env.TKRE_GPU_PROFILE_SIDE ?? 'webgpu';
const MODEL = env.TKRE_GPU_PROFILE_MODEL ?? 'base-fp32';
const LENGTH = env.TKRE_GPU_PROFILE_LENGTH ?? 'fewrel';
const TOP = Number(env.TKRE_GPU_PROFILE_TOP ?? 20);
const CACHE = env.TKRE_CACHE ?? path.join(env.HOME, '.cache/tkre');
process.env.TKRE_WEB_MODELS = path.join(CACHE, 'web-models');
process.env.TKRE_ONNX_MODELS ??= path.join(CACHE, 'onnx-models');

let text = fewrelSentences(1, { marked: false })[0];
if (LENGTH !== 'fewrel') {
  const words = fewrelSentences(40, { marked: false }).join(' ').split(' ');
  text = words.slice(0, Number(LENGTH) - 2).join(' ');
}

// Runs in the page before any script: counts and timestamps every dispatch.
function instrument() {
  const probe = { querySet: null, device: null, next: 0, labels: [], on: false };
  window.gpuProbe = probe;
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (descriptor = {}) {
    const features = new Set(descriptor.requiredFeatures ?? []);
    features.add('timestamp-query');
    features.add('chromium-experimental-timestamp-query-inside-passes');
    const device = await requestDevice.call(this, { ...descriptor, requiredFeatures: [...features] });
    probe.device = device;
    probe.querySet = device.createQuerySet({ type: 'timestamp', count: 4096 });
    return device;
  };
  const setPipeline = GPUComputePassEncoder.prototype.setPipeline;
  GPUComputePassEncoder.prototype.setPipeline = function (pipeline) {
    this.kernel = pipeline.label || '(unlabelled)';
    return setPipeline.call(this, pipeline);
  };
  const dispatch = GPUComputePassEncoder.prototype.dispatchWorkgroups;
  GPUComputePassEncoder.prototype.dispatchWorkgroups = function (x, y = 1, z = 1) {
    const timed = probe.on && probe.querySet && probe.next < 4094;
    if (timed) this.writeTimestamp(probe.querySet, probe.next);
    const result = dispatch.call(this, x, y, z);
    if (timed) {
      this.writeTimestamp(probe.querySet, probe.next + 1);
      probe.labels.push(`${this.kernel} [${x},${y},${z}]`);
      probe.next += 2;
    }
    return result;
  };
  probe.read = async () => {
    const { device, next } = probe;
    const size = 8 * Math.max(next, 2);
    const resolved = device.createBuffer({ size, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const mapped = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = device.createCommandEncoder();
    if (next) encoder.resolveQuerySet(probe.querySet, 0, next, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, mapped, 0, size);
    device.queue.submit([encoder.finish()]);
    await mapped.mapAsync(GPUMapMode.READ);
    const stamps = new BigInt64Array(mapped.getMappedRange().slice(0));
    const perKernel = new Map();
    for (let i = 0; i < next / 2; i++) {
      const ms = Number(stamps[2 * i + 1] - stamps[2 * i]) / 1e6;
      const [total, count] = perKernel.get(probe.labels[i]) ?? [0, 0];
      perKernel.set(probe.labels[i], [total + ms, count + 1]);
    }
    return { dispatches: next / 2, perKernel: [...perKernel] };
  };
}

const server = await startServer();
const browser = await launchBrowser(['--enable-dawn-features=allow_unsafe_apis']);
try {
  const context = await browser.newContext();
  await context.addInitScript(instrument);
  const page = await context.newPage();
  await page.goto(`${server.url}bench/browser.html`);
  const result = await page.evaluate(
    async ({ SIDE, MODEL, text }) => {
      let embed;
      if (SIDE === 'transformers.js') {
        const { createTransformersEmbedder } = await import('/bench/transformers-page.js');
        const precision = MODEL.endsWith('int8') ? 'int8' : 'fp32';
        ({ embed } = await createTransformersEmbedder({ backend: 'webgpu', precision }));
      } else {
        const m = await import('/pkg/src/index.js');
        const x = await m.createExtractor({ modelUrl: `/models/${MODEL}/`, backend: SIDE, useCache: false, maxLength: 512 });
        embed = (batch) => x.embed(batch);
      }
      await embed([text]); // shader compilation
      window.gpuProbe.on = true;
      const started = performance.now();
      await embed([text]);
      const ms = performance.now() - started;
      window.gpuProbe.on = false;
      return { ms, ...(await window.gpuProbe.read()) };
    },
    { SIDE, MODEL, text },
  );
  const gpuMs = result.perKernel.reduce((sum, [, [ms]]) => sum + ms, 0);
  console.log(`${SIDE} ${MODEL} length ${LENGTH}: ${result.ms.toFixed(0)} ms per query, ${result.dispatches} dispatches, ${gpuMs.toFixed(0)} ms inside them`);
  console.log('| GPU ms | share | dispatches | kernel [workgroups] |');
  console.log('|---|---|---|---|');
  for (const [kernel, [ms, count]] of result.perKernel.sort((a, b) => b[1][0] - a[1][0]).slice(0, TOP)) {
    console.log(`| ${ms.toFixed(1)} | ${((100 * ms) / gpuMs).toFixed(1)}% | ${count} | ${kernel.slice(0, 120)} |`);
  }
} finally {
  await browser.close();
  server.stop();
}
