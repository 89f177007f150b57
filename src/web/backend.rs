//! Choosing the compute device in the browser: WebGPU when an adapter exists, else CPU.

use burn::tensor::Device;

/// The device that was chosen and why.
pub struct ChosenBackend {
    pub device: Device,
    /// `"webgpu"` or `"cpu"`.
    pub name: &'static str,
    pub reason: String,
}

/// The CPU: the extractor runs the fused forward pass (crate::model::fused_cpu) on it; burn's
/// flex device holds the weights as they load.
fn cpu(reason: String) -> ChosenBackend {
    ChosenBackend {
        device: Device::flex(),
        name: "cpu",
        reason,
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

async fn webgpu() -> Result<ChosenBackend, String> {
    if !has_webgpu() {
        return Err("this browser exposes no WebGPU (navigator.gpu is missing)".into());
    }
    // The synchronous default device would block forever in a page; init_async requests the
    // adapter and device through the browser's promises.
    match Device::wgpu_options().init_async().await {
        Ok(device) => Ok(ChosenBackend {
            device,
            name: "webgpu",
            reason: "a WebGPU adapter is available".into(),
        }),
        Err(e) => Err(format!("WebGPU initialisation failed: {e}")),
    }
}

/// `"auto"`, `"webgpu"`, `"cpu"` (burn's flex) or `"ndarray"` (burn's ndarray CPU backend,
/// offered to measure it against flex in the browser).
pub async fn choose(requested: &str) -> Result<ChosenBackend, String> {
    match requested {
        "cpu" => Ok(cpu("CPU requested".into())),
        #[allow(deprecated)] // burn marks ndarray deprecated in favour of flex
        "ndarray" => Ok(ChosenBackend {
            device: Device::ndarray(),
            name: "ndarray",
            reason: "ndarray CPU backend requested".into(),
        }),
        "webgpu" => webgpu().await,
        "auto" => match webgpu().await {
            Ok(chosen) => Ok(chosen),
            Err(why) => Ok(cpu(format!("fell back to CPU: {why}"))),
        },
        other => Err(format!(
            "unknown backend {other:?}; use \"auto\", \"webgpu\", \"cpu\" or \"ndarray\""
        )),
    }
}
