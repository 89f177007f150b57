//! Choosing the compute device in the browser: WebGPU when an adapter exists, else CPU.

use burn::tensor::Device;

/// How the encoder runs on the chosen device.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// The fused one-thread CPU forward pass (crate::model::fused_cpu).
    FusedCpu,
    /// The fused WebGPU forward pass (crate::model::fused_gpu); its device is requested once
    /// the model is loaded, and `auto` falls back to the CPU if that fails.
    FusedWebGpu,
    /// burn's own ops on `device` (ndarray, or burn's WebGPU backend): kept to measure against.
    Burn,
}

/// The device that was chosen and why.
pub struct ChosenBackend {
    /// Where burn holds the weights.
    pub device: Device,
    /// `"webgpu"`, `"cpu"`, `"ndarray"` or `"burn-webgpu"`.
    pub name: &'static str,
    pub reason: String,
    pub compute: Compute,
}

/// The CPU: the extractor runs the fused forward pass (crate::model::fused_cpu) on it; burn's
/// flex device holds the weights as they load.
fn cpu(reason: String) -> ChosenBackend {
    ChosenBackend {
        device: Device::flex(),
        name: "cpu",
        reason,
        compute: Compute::FusedCpu,
    }
}

fn has_webgpu() -> bool {
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or_default();
    if navigator.is_undefined() || navigator.is_null() {
        return false;
    }
    js_sys::Reflect::get(&navigator, &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

fn require_webgpu() -> Result<(), String> {
    if has_webgpu() {
        Ok(())
    } else {
        Err("this browser exposes no WebGPU (navigator.gpu is missing)".into())
    }
}

/// The fused WebGPU pass: burn keeps its copy of the weights on the CPU (flex), from which
/// the pass uploads its own.
fn webgpu() -> Result<ChosenBackend, String> {
    require_webgpu()?;
    Ok(ChosenBackend {
        device: Device::flex(),
        name: "webgpu",
        reason: "a WebGPU adapter is available".into(),
        compute: Compute::FusedWebGpu,
    })
}

async fn burn_webgpu() -> Result<ChosenBackend, String> {
    require_webgpu()?;
    // The synchronous default device would block forever in a page; init_async requests the
    // adapter and device through the browser's promises.
    match Device::wgpu_options().init_async().await {
        Ok(device) => Ok(ChosenBackend {
            device,
            name: "burn-webgpu",
            reason: "burn's WebGPU backend requested".into(),
            compute: Compute::Burn,
        }),
        Err(e) => Err(format!("WebGPU initialisation failed: {e}")),
    }
}

/// `"auto"`, `"webgpu"`, `"cpu"`, or, to measure against, burn's own ops: `"ndarray"` (burn's
/// ndarray CPU backend) and `"burn-webgpu"` (burn's WebGPU backend).
pub async fn choose(requested: &str) -> Result<ChosenBackend, String> {
    match requested {
        "cpu" => Ok(cpu("CPU requested".into())),
        #[allow(deprecated)] // burn marks ndarray deprecated in favour of flex
        "ndarray" => Ok(ChosenBackend {
            device: Device::ndarray(),
            name: "ndarray",
            reason: "ndarray CPU backend requested".into(),
            compute: Compute::Burn,
        }),
        "webgpu" => webgpu(),
        "burn-webgpu" => burn_webgpu().await,
        "auto" => match webgpu() {
            Ok(chosen) => Ok(chosen),
            Err(why) => Ok(cpu(format!("fell back to CPU: {why}"))),
        },
        other => Err(format!(
            "unknown backend {other:?}; use \"auto\", \"webgpu\" or \"cpu\" (\"ndarray\" and \"burn-webgpu\": burn's own ops, for comparison)"
        )),
    }
}
