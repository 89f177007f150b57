//! Engines: the ways to run the encoder's forward pass, behind one trait, [`ForwardPass`]
//! (token ids of a ragged batch in, last hidden states out).
//!
//! | engine | where | file |
//! |---|---|---|
//! | [`cpu::CpuEngine`] | browser without WebGPU (a phone), `tkre --engine cpu` | `cpu.rs` + `kernels/*.rs` |
//! | `webgpu::WebGpuEngine` | browser with WebGPU; natively Vulkan (`--engine webgpu`) | `webgpu.rs` + `kernels/shaders/*.wgsl` |
//! | [`burn::BurnEngine`] | native default, training, comparisons | `burn.rs` over `crate::model` |
//!
//! [`Engine::create`] is the one place that picks an engine from what the user asked for
//! ([`EngineRequest`]) and what the platform has, and falls back (WebGPU -> CPU under `auto`).
//! The fused engines read their weights through [`weights`] from the checkpoint as stored (an
//! int8 export stays int8 on the CPU engine); [`batch`] plans which sequences share a pass.
//! Nothing here imports from the layers above (`fewshot`, `relation_encoder`, `web`).

pub mod batch;
#[cfg(feature = "burn")]
pub mod burn;
pub mod cpu;
pub mod kernels;
#[cfg(feature = "webgpu")]
pub mod webgpu;
pub mod weights;

#[cfg(all(test, feature = "burn"))]
pub(crate) mod test_support;

use std::future::Future;

pub use batch::{Batching, PoolingPlan, TOKENS_PER_PASS};
use cpu::CpuEngine;
pub use weights::EncoderWeights;

use crate::checkpoint::{Checkpoint, EncoderConfig};
use crate::error::{Result, TkreError};

/// A forward pass of the encoder.
pub trait ForwardPass {
    /// Last hidden states of `sequences`, without padding: the rows of all sequences one after
    /// another, `[total tokens, hidden]`. Token ids and lengths are checked first.
    fn forward(&self, sequences: &[&[u32]]) -> impl Future<Output = Result<Vec<f32>>>;

    /// How this pass wants its batches planned.
    fn batching(&self) -> Batching;
}

/// burn's CPU and GPU backends the burn engine can run on.
#[cfg(feature = "burn")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BurnBackend {
    /// burn's flex backend: gemm with SIMD, multi-threaded natively.
    Flex,
    /// burn's ndarray backend (deprecated by burn; kept as the measured baseline).
    #[cfg(feature = "ndarray")]
    Ndarray,
    /// burn's WebGPU backend in the browser (the comparison build only).
    #[cfg(all(target_family = "wasm", feature = "burn-webgpu"))]
    WebGpu,
}

/// What a user asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineRequest {
    /// WebGPU where the platform has it, else the CPU engine; natively, burn (threads).
    Auto,
    Cpu,
    WebGpu,
    #[cfg(feature = "burn")]
    Burn(BurnBackend),
}

impl EngineRequest {
    /// Every name [`Self::parse`] takes in this build.
    pub fn names() -> Vec<&'static str> {
        vec![
            "auto",
            "cpu",
            "webgpu",
            #[cfg(feature = "burn")]
            "burn",
            #[cfg(feature = "ndarray")]
            "burn-ndarray",
            #[cfg(all(target_family = "wasm", feature = "burn-webgpu"))]
            "burn-webgpu",
        ]
    }

    /// `auto`, `cpu`, `webgpu`, and where built in, `burn`, `burn-ndarray`, `burn-webgpu`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "webgpu" => Self::WebGpu,
            #[cfg(feature = "burn")]
            "burn" => Self::Burn(BurnBackend::Flex),
            #[cfg(feature = "ndarray")]
            "burn-ndarray" | "ndarray" => Self::Burn(BurnBackend::Ndarray),
            #[cfg(all(target_family = "wasm", feature = "burn-webgpu"))]
            "burn-webgpu" => Self::Burn(BurnBackend::WebGpu),
            other => {
                return Err(TkreError::Option(format!(
                    "unknown engine {other:?}; use {}",
                    Self::names()
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        })
    }
}

/// A ready engine. One lives as long as its model, so the size difference between the
/// variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Engine {
    Cpu(CpuEngine),
    #[cfg(feature = "webgpu")]
    WebGpu(webgpu::WebGpuEngine),
    #[cfg(feature = "burn")]
    Burn(burn::BurnEngine),
}

/// An engine and why it was chosen.
pub struct ChosenEngine {
    pub engine: Engine,
    /// In words, for the user: what was asked, what the platform has, what fell back.
    pub reason: String,
}

impl Engine {
    /// Builds the engine `request` asks for from a checkpoint's weights (`origin` names the
    /// file in errors), falling back from WebGPU to the CPU engine only under `auto`.
    pub async fn create(
        request: EngineRequest,
        weights: Vec<u8>,
        config: &EncoderConfig,
        pad_id: u32,
        origin: &str,
    ) -> Result<ChosenEngine> {
        let fused = |weights: &[u8]| -> Result<EncoderWeights> {
            EncoderWeights::read(&Checkpoint::read(weights, origin)?, config)
        };
        #[cfg(not(feature = "burn"))]
        let _ = pad_id; // the burn engine's padding token
        let chosen = |engine, reason: &str| {
            Ok(ChosenEngine {
                engine,
                reason: reason.to_string(),
            })
        };
        match request {
            EngineRequest::Cpu => chosen(Engine::Cpu(CpuEngine::new(&fused(&weights)?)), "CPU requested"),
            #[cfg(feature = "burn")]
            EngineRequest::Burn(backend) => chosen(
                Engine::Burn(burn::BurnEngine::load(backend, weights, config, pad_id, origin).await?),
                "burn requested",
            ),
            #[cfg(feature = "webgpu")]
            EngineRequest::WebGpu => {
                webgpu::available()?;
                let engine = webgpu::WebGpuEngine::new(&fused(&weights)?).await?;
                let reason = format!("WebGPU requested ({})", engine.adapter());
                chosen(Engine::WebGpu(engine), &reason)
            }
            #[cfg(not(feature = "webgpu"))]
            EngineRequest::WebGpu => Err(TkreError::Option(
                "this build has no WebGPU engine (the `webgpu` feature); use the CPU engine".into(),
            )),
            // In the browser: WebGPU on a hardware adapter, else the CPU engine, with the reason.
            #[cfg(target_family = "wasm")]
            EngineRequest::Auto => {
                let weights = fused(&weights)?;
                #[cfg(feature = "webgpu")]
                let why_not = match auto_webgpu(&weights).await {
                    Ok(engine) => {
                        let reason = format!("a hardware WebGPU adapter is available ({})", engine.adapter());
                        return chosen(Engine::WebGpu(engine), &reason);
                    }
                    Err(e) => e.to_string(),
                };
                #[cfg(not(feature = "webgpu"))]
                let why_not = "this build has no WebGPU engine";
                chosen(
                    Engine::Cpu(CpuEngine::new(&weights)),
                    &format!("fell back to CPU: {why_not}"),
                )
            }
            // Natively: burn on every core (a software Vulkan device would be far slower).
            #[cfg(all(not(target_family = "wasm"), feature = "burn"))]
            EngineRequest::Auto => chosen(
                Engine::Burn(
                    burn::BurnEngine::load(BurnBackend::Flex, weights, config, pad_id, origin).await?,
                ),
                "burn's multi-threaded CPU backend (the native default)",
            ),
            #[cfg(all(not(target_family = "wasm"), not(feature = "burn")))]
            EngineRequest::Auto => chosen(Engine::Cpu(CpuEngine::new(&fused(&weights)?)), "the CPU engine"),
        }
    }

    /// The engine's name: `cpu`, `webgpu`, `burn`, `burn-ndarray`, `burn-webgpu`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Cpu(_) => "cpu",
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => "webgpu",
            #[cfg(feature = "burn")]
            Engine::Burn(engine) => engine.name(),
        }
    }

    /// CPU threads a pass computes on: the CPU engine's pool (in the browser, the page's Web
    /// Workers that joined it; one without cross-origin isolation); one for WebGPU, whose work
    /// is the device's; burn's threads natively.
    pub fn threads(&self) -> usize {
        match self {
            Engine::Cpu(engine) => engine.threads(),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => 1,
            #[cfg(all(feature = "burn", not(target_family = "wasm")))]
            Engine::Burn(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            #[cfg(all(feature = "burn", target_family = "wasm"))]
            Engine::Burn(_) => 1,
        }
    }

    /// Whether the weight matrices are multiplied as int8 integers.
    pub fn uses_int8(&self) -> bool {
        matches!(self, Engine::Cpu(engine) if engine.uses_int8())
    }
}

/// The WebGPU engine `auto` takes: on a hardware adapter only. A software fallback adapter
/// (SwiftShader where the machine has no usable GPU) runs the encoder several times slower
/// than the CPU engine (docs/benchmarks.md), so it is refused with the reason.
#[cfg(all(target_family = "wasm", feature = "webgpu"))]
async fn auto_webgpu(weights: &EncoderWeights) -> Result<webgpu::WebGpuEngine> {
    webgpu::available()?;
    let adapter = webgpu::probe().await?;
    if adapter.software {
        // The browser may not name it (wgpu on the web reports an empty name).
        let named = if adapter.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", adapter.description)
        };
        return Err(TkreError::Device(format!(
            "the only WebGPU adapter is a software fallback{named}, slower than the CPU engine; \
             ask for backend \"webgpu\" to use it anyway"
        )));
    }
    webgpu::WebGpuEngine::new(weights).await
}

impl ForwardPass for Engine {
    async fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        match self {
            Engine::Cpu(engine) => engine.forward(sequences),
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(engine) => engine.forward(sequences).await,
            #[cfg(feature = "burn")]
            Engine::Burn(engine) => engine.forward(sequences).await,
        }
    }

    fn batching(&self) -> Batching {
        match self {
            Engine::Cpu(_) => Batching::Ragged,
            #[cfg(feature = "webgpu")]
            Engine::WebGpu(_) => Batching::Ragged,
            #[cfg(feature = "burn")]
            Engine::Burn(_) => Batching::Padded,
        }
    }
}

/// Runs a future to completion on this thread (native callers of the async engine API; the
/// CPU and burn engines' futures are ready at once).
#[cfg(not(target_family = "wasm"))]
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
