//! The WebGPU engine: the encoder's inference forward pass on WebGPU, fused and specialised for
//! BERT. The browser's engine where `navigator.gpu` gives an adapter.
//!
//! The same plan as [`super::cpu`] (and the same weights, [`super::weights`]):
//! a ragged batch without padding, query/key/value in one product with the query pre-scaled,
//! residual adds folded into the products. Seven dispatches per layer, 44 for all-MiniLM-L6-v2,
//! one command buffer and one read-back per pass, with four small WGSL kernels
//! (`kernels/shaders/*.wgsl`):
//! - `linear`: `x · W + b` with GELU or a residual add in the same kernel, each invocation a
//!   4x4 tile in registers;
//! - `attention`: one invocation per (token, head) over its own sequence's keys, softmax
//!   computed online (running maximum and sum), so no score matrix is stored;
//! - `embed` (word row + position row) and `layer_norm`, one invocation per row.
//!
//! Why not burn's WebGPU backend: on Chromium's SwiftShader adapter 98% of a FewRel query's 9 s
//! went to burn/cubecl's general matmul kernel, where the tile kernel here takes a tenth; and
//! burn issued 336 dispatches per query where this issues 44 (docs/benchmarks.md).

use std::borrow::Cow;

use wgpu::util::DeviceExt;

use super::batch::check_sequences;
use super::weights::{self, EncoderWeights};
use crate::error::{Result, TkreError};

const LINEAR_WGSL: &str = include_str!("kernels/shaders/linear.wgsl");
const ATTENTION_WGSL: &str = include_str!("kernels/shaders/attention.wgsl");
const LAYER_NORM_WGSL: &str = include_str!("kernels/shaders/layer_norm.wgsl");
const EMBED_WGSL: &str = include_str!("kernels/shaders/embed.wgsl");

/// Workgroup shape of `linear.wgsl` (columns of vec4, row quads) and of the row kernels.
const LINEAR_GROUP: (u32, u32) = (16, 4);
const ROW_GROUP: u32 = 64;

/// `linear.wgsl`'s epilogues.
#[derive(Clone, Copy)]
enum Epilogue {
    Plain = 0,
    Gelu = 1,
    Residual = 2,
}

/// A weight matrix and its bias on the GPU (its shape follows from which layer it is).
struct GpuLinear {
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
}

struct GpuLayer {
    qkv: GpuLinear,
    attention_output: GpuLinear,
    attention_norm: wgpu::Buffer,
    intermediate: GpuLinear,
    output: GpuLinear,
    output_norm: wgpu::Buffer,
}

struct Pipelines {
    linear: wgpu::ComputePipeline,
    attention: wgpu::ComputePipeline,
    layer_norm: wgpu::ComputePipeline,
    embed: wgpu::ComputePipeline,
}

/// The encoder's weights on a WebGPU device, with the pipelines of the fused forward pass.
pub struct WebGpuEngine {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: String,
    pipelines: Pipelines,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    epsilon: f32,
    vocab_size: usize,
    max_positions: usize,
    words: wgpu::Buffer,
    /// Position rows with the token-type-0 row added (every sequence is one segment).
    places: wgpu::Buffer,
    embedding_norm: wgpu::Buffer,
    layers: Vec<GpuLayer>,
    /// Bound where an epilogue reads no residual.
    no_residual: wgpu::Buffer,
    /// Receives why the device was lost (wgpu's device-lost callback, which on the web is the
    /// `GPUDevice.lost` promise); taken once by [`WebGpuEngine::device_lost`].
    lost: std::sync::Mutex<Option<futures_channel::oneshot::Receiver<String>>>,
}

/// Whether this JavaScript environment exposes WebGPU (`navigator.gpu`), as an error that
/// says why not.
#[cfg(target_family = "wasm")]
pub fn available() -> Result<()> {
    let global = js_sys::global();
    let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or_default();
    let gpu = if navigator.is_undefined() || navigator.is_null() {
        wasm_bindgen::JsValue::UNDEFINED
    } else {
        js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or_default()
    };
    if gpu.is_undefined() || gpu.is_null() {
        return Err(TkreError::Device(
            "this browser exposes no WebGPU (navigator.gpu is missing)".into(),
        ));
    }
    Ok(())
}

/// Natively the adapter request itself says whether there is a device.
#[cfg(not(target_family = "wasm"))]
pub fn available() -> Result<()> {
    Ok(())
}

/// Where wgpu looks for an adapter: the browser's WebGPU, or natively Vulkan (a GPU, or Mesa's
/// lavapipe software device).
#[cfg(target_family = "wasm")]
const BACKENDS: wgpu::Backends = wgpu::Backends::BROWSER_WEBGPU;
#[cfg(not(target_family = "wasm"))]
const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN;

fn gpu_error(what: &str, e: impl std::fmt::Display) -> TkreError {
    TkreError::Device(format!("WebGPU: {what}: {e}"))
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: BACKENDS,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

async fn request_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| gpu_error("no adapter", e))
}

/// The adapter WebGPU would run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Vendor, name and driver, in words.
    pub description: String,
    /// A software rasteriser on the CPU (the browser's `isFallbackAdapter`, e.g. SwiftShader;
    /// natively lavapipe): the CPU engine runs the encoder several times faster than it.
    pub software: bool,
}

/// Asks for the adapter without creating a device (the engine choice of `auto`).
pub async fn probe() -> Result<AdapterSummary> {
    let info = request_adapter(&instance()).await?.get_info();
    Ok(AdapterSummary {
        description: describe(&info),
        software: info.device_type == wgpu::DeviceType::Cpu,
    })
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.name, info.driver_info).trim().to_string()
}

impl WebGpuEngine {
    /// Asks the browser for a WebGPU adapter and device, and uploads `weights` (widened to f32:
    /// the kernels multiply in f32).
    pub async fn new(weights: &EncoderWeights) -> Result<Self> {
        let config = &weights.config;
        let hidden = config.hidden_size;
        let head_size = config.head_size();
        if ![hidden, head_size, config.intermediate_size]
            .iter()
            .all(|n| n.is_multiple_of(4))
        {
            return Err(TkreError::Model(format!(
                "the WebGPU kernels need hidden ({hidden}), head ({head_size}) and intermediate ({}) \
                 sizes that are multiples of 4; use the CPU backend for this model",
                config.intermediate_size
            )));
        }
        let instance = instance();
        let adapter = request_adapter(&instance).await?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tkre encoder"),
                // The adapter's own limits: the word embeddings alone are 47 MB in one binding.
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_error("the adapter refused a device", e))?;
        let adapter = describe(&info);

        let module = |label: &str, source: String| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
            })
        };
        let pipeline = |label: &str, module: &wgpu::ShaderModule| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let errors = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let attention_source = ATTENTION_WGSL.replace("{HS4}", &(head_size / 4).to_string());
        let pipelines = Pipelines {
            linear: pipeline("linear", &module("linear", LINEAR_WGSL.into())),
            attention: pipeline("attention", &module("attention", attention_source)),
            layer_norm: pipeline("layer_norm", &module("layer_norm", LAYER_NORM_WGSL.into())),
            embed: pipeline("embed", &module("embed", EMBED_WGSL.into())),
        };

        let storage = |label: &str, values: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(values),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let linear = |label: &str, linear: &weights::Linear| GpuLinear {
            weight: storage(label, &linear.weight_f32()),
            bias: storage(label, &linear.bias),
        };
        let norm =
            |label: &str, norm: &weights::Norm| storage(label, &[&norm.gamma[..], &norm.beta[..]].concat());
        let layers = weights
            .layers
            .iter()
            .map(|layer| GpuLayer {
                qkv: linear("qkv", &layer.qkv),
                attention_output: linear("attention output", &layer.attention_output),
                attention_norm: norm("attention norm", &layer.attention_norm),
                intermediate: linear("intermediate", &layer.intermediate),
                output: linear("output", &layer.output),
                output_norm: norm("output norm", &layer.output_norm),
            })
            .collect();
        let mut places = weights.position_embeddings.clone();
        for row in places.chunks_exact_mut(hidden) {
            for (p, t) in row.iter_mut().zip(&weights.token_type) {
                *p += t;
            }
        }
        let (lost_sender, lost) = futures_channel::oneshot::channel();
        let lost_sender = std::sync::Mutex::new(Some(lost_sender));
        device.set_device_lost_callback(move |reason, message| {
            if let Some(sender) = lost_sender.lock().ok().and_then(|mut s| s.take()) {
                // WebGPU's own words for the reason (GPUDeviceLostReason).
                let reason = match reason {
                    wgpu::DeviceLostReason::Destroyed => "destroyed",
                    _ => "unknown",
                };
                let why = if message.is_empty() {
                    reason.to_string()
                } else {
                    format!("{reason}: {message}")
                };
                let _ = sender.send(why);
            }
        });
        let encoder = Self {
            lost: std::sync::Mutex::new(Some(lost)),
            adapter,
            pipelines,
            hidden,
            heads: config.num_attention_heads,
            intermediate: config.intermediate_size,
            epsilon: config.layer_norm_eps as f32,
            vocab_size: config.vocab_size,
            max_positions: config.max_position_embeddings,
            words: storage("word embeddings", &weights.word_embeddings.to_f32(hidden)),
            places: storage("position embeddings", &places),
            embedding_norm: norm("embedding norm", &weights.embedding_norm),
            layers,
            no_residual: storage("no residual", &[0.0; 4]),
            device,
            queue,
        };
        if let Some(e) = errors.pop().await {
            return Err(gpu_error("setting up the encoder failed", e));
        }
        Ok(encoder)
    }

    /// Resolves with why the device was lost, if it is lost while the engine lives (a driver
    /// reset, the GPU process crashing, [`Self::destroy_device`]); `None` after the first call.
    pub fn device_lost(&self) -> Option<impl std::future::Future<Output = Option<String>> + use<>> {
        let receiver = self.lost.lock().ok()?.take()?;
        Some(async move { receiver.await.ok() })
    }

    /// Destroys the device as a GPU reset would (tests of the recovery path).
    pub fn destroy_device(&self) {
        self.device.destroy();
    }

    /// The adapter in words (vendor, name, driver), for the user's information.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    fn uniform(&self, values: [u32; 4]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&values),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    fn activation(&self, label: &str, floats: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    fn bind(&self, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, buffer)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Last hidden states of `sequences`, without padding: the rows of all sequences one after
    /// another, `[total tokens, hidden]` (as [`super::cpu::CpuEngine::forward`]).
    pub async fn forward(&self, sequences: &[&[u32]]) -> Result<Vec<f32>> {
        check_sequences(sequences, self.vocab_size, self.max_positions)?;
        let tokens: usize = sequences.iter().map(|ids| ids.len()).sum();
        if tokens == 0 {
            return Ok(Vec::new());
        }
        let h = self.hidden;
        let h4 = (h / 4) as u32;
        let rows = tokens as u32;
        // Per token: (id, position) for the embeddings, (first row, length) of its sequence
        // for attention.
        let mut token_rows = Vec::with_capacity(2 * tokens);
        let mut spans = Vec::with_capacity(2 * tokens);
        let mut first = 0u32;
        for ids in sequences {
            for (position, &id) in ids.iter().enumerate() {
                token_rows.extend([id, position as u32]);
                spans.extend([first, ids.len() as u32]);
            }
            first += ids.len() as u32;
        }
        let input = |label: &str, values: &[u32]| {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(values),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let errors = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let token_rows = input("tokens", &token_rows);
        let spans = input("spans", &spans);
        let hidden = self.activation("hidden", tokens * h);
        let summed = self.activation("summed", tokens * h);
        let qkv = self.activation("qkv", tokens * 3 * h);
        let context = self.activation("context", tokens * h);
        let intermediate = self.activation("intermediate", tokens * self.intermediate);
        let read_back = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size: (tokens * h * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let epsilon = self.epsilon.to_bits();
        let rows_params = self.uniform([rows, h4, epsilon, 0]);
        let attention_params = self.uniform([rows, self.heads as u32, h4, 0]);
        let row_groups = rows.div_ceil(ROW_GROUP);
        // The four products of a layer, the same shapes in every layer: their parameters and
        // workgroup counts, made once per pass.
        let i4 = (self.intermediate / 4) as u32;
        let product = |k4: u32, n4: u32, epilogue: Epilogue| {
            let groups = (
                n4.div_ceil(LINEAR_GROUP.0),
                rows.div_ceil(4).div_ceil(LINEAR_GROUP.1),
            );
            (self.uniform([rows, k4, n4, epilogue as u32]), groups)
        };
        let (qkv_params, qkv_groups) = product(h4, 3 * h4, Epilogue::Plain);
        let (out_params, out_groups) = product(h4, h4, Epilogue::Residual);
        let (up_params, up_groups) = product(h4, i4, Epilogue::Gelu);
        let (down_params, down_groups) = product(i4, h4, Epilogue::Residual);

        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            let mut dispatch =
                |pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer], (x, y): (u32, u32)| {
                    let group = self.bind(pipeline, buffers);
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, &group, &[]);
                    pass.dispatch_workgroups(x, y, 1);
                };
            let (linear, norm) = (&self.pipelines.linear, &self.pipelines.layer_norm);
            let inputs = [&rows_params, &token_rows, &self.words, &self.places, &summed];
            dispatch(&self.pipelines.embed, &inputs, (row_groups, 1));
            dispatch(
                norm,
                &[&rows_params, &summed, &self.embedding_norm, &hidden],
                (row_groups, 1),
            );
            for layer in &self.layers {
                let (w, b) = (&layer.qkv.weight, &layer.qkv.bias);
                dispatch(
                    linear,
                    &[&qkv_params, &hidden, w, b, &self.no_residual, &qkv],
                    qkv_groups,
                );
                let buffers = [&attention_params, &qkv, &spans, &context];
                dispatch(
                    &self.pipelines.attention,
                    &buffers,
                    ((rows * self.heads as u32).div_ceil(ROW_GROUP), 1),
                );
                let (w, b) = (&layer.attention_output.weight, &layer.attention_output.bias);
                dispatch(
                    linear,
                    &[&out_params, &context, w, b, &hidden, &summed],
                    out_groups,
                );
                dispatch(
                    norm,
                    &[&rows_params, &summed, &layer.attention_norm, &hidden],
                    (row_groups, 1),
                );
                let (w, b) = (&layer.intermediate.weight, &layer.intermediate.bias);
                dispatch(
                    linear,
                    &[&up_params, &hidden, w, b, &self.no_residual, &intermediate],
                    up_groups,
                );
                let (w, b) = (&layer.output.weight, &layer.output.bias);
                dispatch(
                    linear,
                    &[&down_params, &intermediate, w, b, &hidden, &summed],
                    down_groups,
                );
                dispatch(
                    norm,
                    &[&rows_params, &summed, &layer.output_norm, &hidden],
                    (row_groups, 1),
                );
            }
        }
        encoder.copy_buffer_to_buffer(&hidden, 0, &read_back, 0, Some((tokens * h * 4) as u64));
        self.queue.submit([encoder.finish()]);
        if let Some(e) = memory.pop().await {
            return Err(gpu_error(&format!("out of GPU memory for {tokens} tokens"), e));
        }
        if let Some(e) = errors.pop().await {
            return Err(gpu_error("the forward pass failed", e));
        }

        let (sender, receiver) = futures_channel::oneshot::channel();
        read_back.slice(..).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        // Natively the callback only runs when the device is polled; on the web the browser
        // runs it, and this poll does nothing.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        receiver
            .await
            .map_err(|_| gpu_error("reading the results back", "the device was lost"))?
            .map_err(|e| gpu_error("reading the results back", e))?;
        let values = {
            let view = read_back
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_error("reading the results back", e))?;
            view.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        read_back.unmap();
        Ok(values)
    }
}
