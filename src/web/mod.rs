//! The JavaScript API, compiled only for wasm32 (wasm-bindgen).
//!
//! State lives behind `Rc<RefCell<..>>` so that every method can return a `Promise` whose
//! future owns what it needs: GPU results are read back asynchronously, and no borrow is held
//! across an `await`. No path on user input panics; every error becomes a rejected promise
//! (an `Error` with the library's message and a `kind`: input, model, device, ...).

mod backend;

use backend::Compute;

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::TkreError;
use crate::fewshot::support_set::check_key;
use crate::fewshot::{EncodedSupportSet, ExampleInput, PrototypeClassifier, RelationText, SupportSet};
use crate::model::fused_gpu::FusedGpuEncoder;
use crate::relation_encoder::{ModelFiles, PoolingPlan, RelationEncoder};
use crate::text::RelationInstance;

unsafe extern "C" {
    /// Runs the static constructors (dependencies register plugins through `inventory`);
    /// synthesised by the wasm linker.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once and installs the panic hook (diagnostics only: no
/// panicking path is reachable from input).
///
/// Why the explicit constructor call: a module that never calls `__wasm_call_ctors` is linked
/// "command style", and wasm-ld then wraps *every* export in a call to it. The constructors
/// (inventory registrations of burn's compiler crates) then ran on each call into the module,
/// about 3 ms per `embed` (measured with bench/profile.js). Calling it here, once, after
/// instantiation, makes the linker leave the exports alone.
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: called once, before any other export (wasm-bindgen runs the start function right
    // after instantiation); the constructors only register static data.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

struct State {
    encoder: RelationEncoder,
    /// The fused WebGPU forward pass, on the `webgpu` backend (shared so that no borrow of the
    /// state is held while a pass runs on the GPU).
    gpu: Option<Rc<FusedGpuEncoder>>,
    /// The relations, their text and examples, each encoded once when added or changed.
    support: EncodedSupportSet,
}

/// A loaded model with a support set, ready to classify.
#[wasm_bindgen]
pub struct Extractor {
    state: Rc<RefCell<State>>,
    backend: String,
    backend_reason: String,
}

/// What kind of failure an error is, for JavaScript callers: they act on `error.kind`, never
/// on the message, which quotes user input.
trait ErrorKind: std::fmt::Display {
    fn kind(&self) -> &'static str;
}

impl ErrorKind for crate::TkreError {
    fn kind(&self) -> &'static str {
        crate::TkreError::kind(self)
    }
}

/// Messages written here are about the caller's input.
impl ErrorKind for String {
    fn kind(&self) -> &'static str {
        "input"
    }
}

impl ErrorKind for serde_wasm_bindgen::Error {
    fn kind(&self) -> &'static str {
        "internal"
    }
}

/// A failure of the compute device (reading results back, choosing a backend).
struct DeviceError(String);

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ErrorKind for DeviceError {
    fn kind(&self) -> &'static str {
        "device"
    }
}

/// A JavaScript `Error` with the message and a `kind` property.
fn js_error(e: impl ErrorKind) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &JsValue::from_str("kind"), &JsValue::from_str(e.kind()));
    error.into()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js_error)
}

/// Most sequences in one encoder pass (fewer when long: [`PoolingPlan::length_groups`]).
const MAX_BATCH: usize = 64;

/// Runs the encoder on `plan`. On the CPU: the fused forward pass, one ragged batch without
/// padding. Elsewhere (WebGPU) the pooled vectors are read back asynchronously: one pass per
/// group of similar length (padding every sentence to the longest of the call wasted up to
/// half the compute on FewRel lengths), the pooled results joined on the device so that a GPU
/// is read back once.
async fn encode(state: &Rc<RefCell<State>>, plan: PoolingPlan) -> Result<Vec<Vec<f32>>, JsValue> {
    if plan.ids.is_empty() {
        return Ok(Vec::new());
    }
    let gpu = state.borrow().gpu.clone();
    if let Some(gpu) = gpu {
        let width = plan.parts * state.borrow().encoder.config.hidden_size;
        let mut pooled = vec![0.0f32; plan.ids.len() * width];
        for pass in plan.ragged_passes() {
            let sequences: Vec<&[u32]> = plan.ids[pass.clone()].iter().map(Vec::as_slice).collect();
            let hidden = gpu.forward(&sequences).await.map_err(js_error)?;
            state
                .borrow()
                .encoder
                .pool_pass(&plan, pass, &hidden, &mut pooled)
                .map_err(js_error)?;
        }
        return Ok(state.borrow().encoder.finish(&plan, pooled));
    }
    if let Some(values) = state.borrow().encoder.pooled_fused(&plan) {
        return Ok(state.borrow().encoder.finish(&plan, values.map_err(js_error)?));
    }
    let groups = plan.length_groups(MAX_BATCH);
    let order: Vec<usize> = groups.iter().flatten().copied().collect();
    let grouped = plan.select(&order);
    let tensor = {
        let state = state.borrow();
        let pooled: Vec<_> = groups
            .iter()
            .map(|g| state.encoder.pooled(&plan.select(g)))
            .collect();
        burn::tensor::Tensor::cat(pooled, 0)
    };
    let data = tensor.into_data_async().await.map_err(|e| {
        js_error(DeviceError(format!(
            "reading results from the device failed: {e:?}"
        )))
    })?;
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| js_error(DeviceError(format!("reading results failed: {e:?}"))))?;
    let mut out = vec![Vec::new(); order.len()];
    for (i, vector) in order
        .into_iter()
        .zip(state.borrow().encoder.finish(&grouped, values))
    {
        out[i] = vector;
    }
    Ok(out)
}

/// Relation representations of `instances`, in order.
async fn encode_instances(
    state: &Rc<RefCell<State>>,
    instances: &[RelationInstance],
) -> Result<Vec<Vec<f32>>, JsValue> {
    let plan = state
        .borrow()
        .encoder
        .plan_instances(instances)
        .map_err(js_error)?;
    encode(state, plan).await
}

/// Sentence embeddings of relation texts, in order.
async fn encode_texts(state: &Rc<RefCell<State>>, texts: &[String]) -> Result<Vec<Vec<f32>>, JsValue> {
    let plan = state.borrow().encoder.plan_sentences(texts).map_err(js_error)?;
    encode(state, plan).await
}

/// The embedding of a relation's text, when it has some.
async fn encode_text(state: &Rc<RefCell<State>>, text: &RelationText) -> Result<Option<Vec<f32>>, JsValue> {
    match text.sentence() {
        Some(sentence) => Ok(encode_texts(state, &[sentence]).await?.pop()),
        None => Ok(None),
    }
}

/// `addRelation`'s options: `{name?, description?, examples?}` (fields checked by
/// [`check_fields`]).
#[derive(Deserialize)]
struct RelationOptions {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    examples: Option<Vec<ExampleInput>>,
}

/// Rejects an options object with a field outside `allowed` (serde-wasm-bindgen reads only the
/// fields a struct declares, so a misspelt one would be dropped without a word).
fn check_fields(value: &JsValue, allowed: &[&str], what: &str) -> Result<(), JsValue> {
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Ok(()); // the typed parse that follows reports the wrong shape
    }
    let object: &js_sys::Object = value.unchecked_ref();
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !allowed.contains(&key.as_str()) {
            return Err(js_error(format!(
                "{what}: unknown field `{key}`; expected {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

fn parse_text(text: JsValue, what: &str) -> Result<RelationText, JsValue> {
    if text.is_undefined() || text.is_null() {
        return Ok(RelationText::default());
    }
    check_fields(&text, &["name", "description"], what)?;
    serde_wasm_bindgen::from_value(text).map_err(|e| {
        js_error(format!(
            "{what} takes {{name?: string, description?: string}}: {e}"
        ))
    })
}

fn to_instances(inputs: Vec<ExampleInput>) -> Result<Vec<(ExampleInput, RelationInstance)>, JsValue> {
    inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            input
                .to_instance()
                .map(|instance| (input, instance))
                .map_err(|e| js_error(format!("example #{}: {e}", i + 1)))
        })
        .collect()
}

fn parse_examples(examples: JsValue) -> Result<Vec<(ExampleInput, RelationInstance)>, JsValue> {
    let inputs: Vec<ExampleInput> = serde_wasm_bindgen::from_value(examples).map_err(|e| {
        js_error(format!(
            "examples must be an array of marked sentences (\"[E1]..[/E1] .. [E2]..[/E2]\") or \
             {{text, head: {{start, end}}, tail: {{start, end}}}} objects: {e}"
        ))
    })?;
    to_instances(inputs)
}

fn classifier(state: &State) -> Result<PrototypeClassifier, TkreError> {
    state
        .support
        .classifier(state.encoder.representation.parts().len(), true)
}

#[wasm_bindgen]
impl Extractor {
    /// Loads a model from the bytes of its three files. `backend`: "auto", "webgpu" or "cpu".
    pub async fn create(
        config_json: Vec<u8>,
        model_safetensors: Vec<u8>,
        tokenizer_json: Vec<u8>,
        backend: String,
    ) -> Result<Extractor, JsValue> {
        let chosen = backend::choose(&backend)
            .await
            .map_err(|e| js_error(DeviceError(e)))?;
        let files = ModelFiles {
            config_json,
            weights_safetensors: model_safetensors,
            tokenizer_json,
        };
        let mut encoder = RelationEncoder::from_files(files, chosen.device).map_err(js_error)?;
        let (mut name, mut reason) = (chosen.name, chosen.reason);
        let mut gpu = None;
        match chosen.compute {
            Compute::FusedCpu => encoder.use_fused_cpu().map_err(js_error)?,
            Compute::FusedWebGpu => match FusedGpuEncoder::new(&encoder.model, &encoder.config).await {
                Ok(fused) => {
                    if !fused.adapter().is_empty() {
                        reason = format!("{reason} ({})", fused.adapter());
                    }
                    gpu = Some(Rc::new(fused));
                }
                Err(e) if backend == "auto" => {
                    encoder.use_fused_cpu().map_err(js_error)?;
                    name = "cpu";
                    reason = format!("fell back to CPU: {e}");
                }
                Err(e) => return Err(js_error(e)),
            },
            Compute::Burn => {}
        }
        if encoder.fused_cpu_uses_int8() {
            reason = format!("{reason}; int8 weights multiplied in integers");
        }
        Ok(Extractor {
            state: Rc::new(RefCell::new(State {
                encoder,
                gpu,
                support: EncodedSupportSet::default(),
            })),
            backend: name.to_string(),
            backend_reason: reason,
        })
    }

    /// Maximum tokens per sentence, [CLS]/[SEP] included (default 256; capped by the model's
    /// position table). Longer relation instances keep a window around both entities;
    /// longer sentences for `embed` are cut.
    #[wasm_bindgen(getter, js_name = maxLength)]
    pub fn max_length(&self) -> usize {
        self.state.borrow().encoder.max_len
    }

    /// Sets the maximum tokens per sentence; an error outside 8 .. the model's position table
    /// (a method, not a setter: wasm-bindgen setters cannot report errors).
    #[wasm_bindgen(js_name = setMaxLength)]
    pub fn set_max_length(&self, tokens: usize) -> Result<(), JsValue> {
        self.state
            .borrow_mut()
            .encoder
            .set_max_len(tokens)
            .map_err(js_error)
    }

    /// "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// Why that backend was chosen.
    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        self.backend_reason.clone()
    }

    /// Adds a relation: `{name?, description?, examples?}`; it needs examples, text, or both
    /// (text alone: zero-shot). Its text and examples are encoded once, now. Resolves to its
    /// example count.
    #[wasm_bindgen(js_name = addRelation)]
    pub fn add_relation(&self, key: String, options: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            check_fields(&options, &["name", "description", "examples"], "addRelation")?;
            let options: RelationOptions = if options.is_undefined() || options.is_null() {
                RelationOptions {
                    name: None,
                    description: None,
                    examples: None,
                }
            } else {
                serde_wasm_bindgen::from_value(options).map_err(|e| {
                    js_error(format!(
                        "addRelation takes (key, {{name?: string, description?: string, examples?: [...]}}): {e}"
                    ))
                })?
            };
            let text = RelationText::new(options.name, options.description);
            let parsed = to_instances(options.examples.unwrap_or_default())?;
            let key = state
                .borrow()
                .support
                .check_new_relation(&key, &text, parsed.len())
                .map_err(js_error)?;
            let instances: Vec<RelationInstance> = parsed.iter().map(|(_, i)| i.clone()).collect();
            let vectors = encode_instances(&state, &instances).await?;
            let text_vector = encode_text(&state, &text).await?;
            let examples: Vec<_> = parsed.into_iter().map(|(input, _)| input).zip(vectors).collect();
            let count = examples.len();
            state
                .borrow_mut()
                .support
                .add_relation(key, text, text_vector, examples)
                .map_err(js_error)?;
            Ok(JsValue::from(count as u32))
        })
    }

    /// Replaces a relation's text, `{name?, description?}` (null clears it; a relation without
    /// examples must keep some). Encoded once, now.
    #[wasm_bindgen(js_name = setRelationText)]
    pub fn set_relation_text(&self, key: String, text: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let text = parse_text(text, "setRelationText")?;
            state.borrow().support.check_text(&key, &text).map_err(js_error)?;
            let vector = encode_text(&state, &text).await?;
            state
                .borrow_mut()
                .support
                .set_text(&key, text, vector)
                .map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Adds examples to a relation (created if new). Each example is encoded once, now.
    /// Resolves to the relation's example count.
    #[wasm_bindgen(js_name = addExamples)]
    pub fn add_examples(&self, relation: String, examples: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            check_key(&relation, "the relation").map_err(js_error)?;
            let parsed = parse_examples(examples)?;
            if parsed.is_empty() {
                return Err(js_error(format!("no examples given for relation {relation:?}")));
            }
            let instances: Vec<RelationInstance> = parsed.iter().map(|(_, i)| i.clone()).collect();
            let vectors = encode_instances(&state, &instances).await?;
            let examples = parsed.into_iter().map(|(input, _)| input).zip(vectors).collect();
            let count = state
                .borrow_mut()
                .support
                .add_examples(&relation, examples)
                .map_err(js_error)?;
            Ok(JsValue::from(count as u32))
        })
    }

    /// Removes one example (by index) from a relation; the relation goes when it has neither
    /// examples nor text left.
    #[wasm_bindgen(js_name = removeExample)]
    pub fn remove_example(&self, relation: &str, index: usize) -> Result<(), JsValue> {
        self.state
            .borrow_mut()
            .support
            .remove_example(relation, index)
            .map_err(js_error)
    }

    /// Removes a relation with all its examples.
    #[wasm_bindgen(js_name = removeRelation)]
    pub fn remove_relation(&self, relation: &str) -> Result<(), JsValue> {
        self.state
            .borrow_mut()
            .support
            .remove_relation(relation)
            .map_err(js_error)
    }

    /// Sets (a number in -1..1) or clears (null/undefined) the none-of-the-above threshold.
    #[wasm_bindgen(js_name = setNoneThreshold)]
    pub fn set_none_threshold(&self, threshold: Option<f32>) -> Result<(), JsValue> {
        self.state
            .borrow_mut()
            .support
            .set_none_threshold(threshold)
            .map_err(js_error)
    }

    /// The relations: `[{key, name, description?, examples}]` (`name` is the key when the
    /// relation has no display name; `examples` is a count).
    pub fn relations(&self) -> Result<JsValue, JsValue> {
        to_js(&self.state.borrow().support.summaries())
    }

    /// Classifies marked sentences (or `{text, head, tail}` objects) with one encoder pass.
    /// Resolves to one `{ranked: [{relation, probability, similarity}], none_of_the_above}`
    /// per query.
    pub fn classify(&self, queries: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let parsed = parse_examples(queries)?;
            let classifier = classifier(&state.borrow()).map_err(js_error)?;
            let instances: Vec<RelationInstance> = parsed.into_iter().map(|(_, i)| i).collect();
            if instances.is_empty() {
                return to_js(&Vec::<()>::new());
            }
            let vectors = encode_instances(&state, &instances).await?;
            let predictions = vectors
                .iter()
                .map(|v| classifier.classify(v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(js_error)?;
            to_js(&predictions)
        })
    }

    /// Sentence embeddings, one per text: the L2-normalised mean of the last hidden states
    /// (what `tkre embed` and sentence-transformers compute), in one encoder pass.
    pub fn embed(&self, texts: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let texts: Vec<String> = serde_wasm_bindgen::from_value(texts)
                .map_err(|e| js_error(format!("embed takes an array of strings: {e}")))?;
            if texts.is_empty() {
                return to_js(&Vec::<Vec<f32>>::new());
            }
            let plan = state.borrow().encoder.plan_sentences(&texts).map_err(js_error)?;
            // One Float32Array per text: copied in one go, where serde would cross into JS
            // once per number.
            let vectors = js_sys::Array::new();
            for vector in encode(&state, plan).await? {
                vectors.push(&js_sys::Float32Array::from(vector.as_slice()));
            }
            Ok(vectors.into())
        })
    }

    /// The support set as JSON (the same format `tkre classify --support` reads).
    #[wasm_bindgen(js_name = supportSetJson)]
    pub fn support_set_json(&self) -> String {
        self.state.borrow().support.to_support_set().to_json()
    }

    /// Replaces the support set with one from JSON; every example and relation text is
    /// encoded once.
    #[wasm_bindgen(js_name = loadSupportSet)]
    pub fn load_support_set(&self, json: String) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let set = SupportSet::from_json(&json, "support set").map_err(js_error)?;
            let parsed = set.parse().map_err(js_error)?;
            let vectors = encode_instances(&state, &parsed.instances()).await?;
            let texts = encode_texts(&state, &parsed.texts()).await?;
            let support = EncodedSupportSet::from_parsed(parsed, vectors, texts).map_err(js_error)?;
            let count = support.relations.len();
            state.borrow_mut().support = support;
            Ok(JsValue::from(count as u32))
        })
    }
}
