// Notices when a WebGPU device is lost (driver reset, GPU process crash, tab in the
// background too long on some systems), so that the extractor can move to the CPU before its
// next call instead of failing or hanging on a dead device.
//
// The wasm module creates its device through wgpu, which does not tell JavaScript about it;
// so requestDevice is wrapped once per realm and the devices created while a model loads are
// handed to that model's extractor, which watches their `lost` promise.

let installed = false;
let capture = null;
const known = [];
let queue = Promise.resolve();

function install() {
  if (installed || typeof GPUAdapter === 'undefined') return;
  installed = true;
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    known.push(device);
    capture?.push(device);
    return device;
  };
}

/**
 * Runs `create` (which may create WebGPU devices) and returns its result with the devices it
 * created. Captures run one after another, so two loads never see each other's devices.
 */
export function withDeviceCapture(create) {
  install();
  const run = async () => {
    const devices = [];
    capture = devices;
    try {
      const value = await create();
      // burn keeps one device per realm: a second model on WebGPU reuses the first one's.
      return { value, devices: devices.length ? devices : [...known] };
    } finally {
      capture = null;
    }
  };
  const result = queue.then(run);
  queue = result.catch(() => {});
  return result;
}
