//! The JavaScript API, compiled only for wasm32 (wasm-bindgen).
//!
//! State lives behind `Rc<RefCell<..>>` so that every method can return a `Promise` whose
//! future owns what it needs: GPU results are read back asynchronously, and no borrow is held
//! across an `await`. No path on user input panics; every error becomes a rejected promise
//! (a `JsError` with the library's message).

mod backend;

use backend::Compute;

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::TkreError;
use crate::fewshot::{ExampleInput, PrototypeClassifier, RelationExamples, SupportSet};
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

struct StoredRelation {
    name: String,
    description: Option<String>,
    /// Each example as the user gave it, and its representation (computed once, when added).
    examples: Vec<(ExampleInput, Vec<f32>)>,
}

struct State {
    encoder: RelationEncoder,
    /// The fused WebGPU forward pass, on the `webgpu` backend (shared so that no borrow of the
    /// state is held while a pass runs on the GPU).
    gpu: Option<Rc<FusedGpuEncoder>>,
    relations: Vec<StoredRelation>,
    none_threshold: Option<f32>,
}

/// A loaded model with a support set, ready to classify.
#[wasm_bindgen]
pub struct Extractor {
    state: Rc<RefCell<State>>,
    backend: String,
    backend_reason: String,
}

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
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
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| js_error(format!("reading results from the device failed: {e:?}")))?;
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| js_error(format!("reading results failed: {e:?}")))?;
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

fn parse_examples(examples: JsValue) -> Result<Vec<(ExampleInput, RelationInstance)>, JsValue> {
    let inputs: Vec<ExampleInput> = serde_wasm_bindgen::from_value(examples).map_err(|e| {
        js_error(format!(
            "examples must be an array of marked sentences (\"[E1]..[/E1] .. [E2]..[/E2]\") or \
             {{text, head: {{start, end}}, tail: {{start, end}}}} objects: {e}"
        ))
    })?;
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

fn classifier(state: &State) -> Result<PrototypeClassifier, TkreError> {
    let relations = state
        .relations
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.examples.iter().map(|(_, v)| v.clone()).collect(),
            )
        })
        .collect();
    let mut classifier = PrototypeClassifier::new(relations, state.encoder.representation.parts().len())?;
    classifier.none_threshold = state.none_threshold;
    Ok(classifier)
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
        let chosen = backend::choose(&backend).await.map_err(js_error)?;
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
                relations: Vec::new(),
                none_threshold: None,
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

    #[wasm_bindgen(setter, js_name = maxLength)]
    pub fn set_max_length(&self, tokens: usize) {
        self.state.borrow_mut().encoder.set_max_len(tokens);
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

    /// Adds examples to a relation (created if new). Each example is encoded once, now.
    /// Resolves to the relation's example count.
    #[wasm_bindgen(js_name = addExamples)]
    pub fn add_examples(&self, relation: String, examples: JsValue) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let name = relation.trim().to_string();
            if name.is_empty() {
                return Err(js_error("the relation name is empty"));
            }
            let parsed = parse_examples(examples)?;
            if parsed.is_empty() {
                return Err(js_error(format!("no examples given for relation {name:?}")));
            }
            let instances: Vec<RelationInstance> = parsed.iter().map(|(_, i)| i.clone()).collect();
            let vectors = encode_instances(&state, &instances).await?;
            let mut state = state.borrow_mut();
            let index = match state.relations.iter().position(|r| r.name == name) {
                Some(i) => i,
                None => {
                    state.relations.push(StoredRelation {
                        name: name.clone(),
                        description: None,
                        examples: Vec::new(),
                    });
                    state.relations.len() - 1
                }
            };
            let stored = &mut state.relations[index];
            stored
                .examples
                .extend(parsed.into_iter().map(|(input, _)| input).zip(vectors));
            Ok(JsValue::from(stored.examples.len() as u32))
        })
    }

    /// Removes one example (by index) from a relation; the relation goes when it has none left.
    #[wasm_bindgen(js_name = removeExample)]
    pub fn remove_example(&self, relation: &str, index: usize) -> Result<(), JsValue> {
        let mut state = self.state.borrow_mut();
        let r = state
            .relations
            .iter()
            .position(|r| r.name == relation)
            .ok_or_else(|| js_error(format!("unknown relation {relation:?}")))?;
        let count = state.relations[r].examples.len();
        if index >= count {
            return Err(js_error(format!(
                "relation {relation:?} has {count} example(s); index {index} is out of range"
            )));
        }
        state.relations[r].examples.remove(index);
        if state.relations[r].examples.is_empty() {
            state.relations.remove(r);
        }
        Ok(())
    }

    /// Removes a relation with all its examples.
    #[wasm_bindgen(js_name = removeRelation)]
    pub fn remove_relation(&self, relation: &str) -> Result<(), JsValue> {
        let mut state = self.state.borrow_mut();
        let before = state.relations.len();
        state.relations.retain(|r| r.name != relation);
        if state.relations.len() == before {
            return Err(js_error(format!("unknown relation {relation:?}")));
        }
        Ok(())
    }

    /// Sets (a number in -1..1) or clears (null/undefined) the none-of-the-above threshold.
    #[wasm_bindgen(js_name = setNoneThreshold)]
    pub fn set_none_threshold(&self, threshold: Option<f32>) -> Result<(), JsValue> {
        if let Some(t) = threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(js_error(format!(
                "none-of-the-above threshold {t} is outside -1..1"
            )));
        }
        self.state.borrow_mut().none_threshold = threshold;
        Ok(())
    }

    /// The relations and their example counts: `[{name, examples}]`.
    pub fn relations(&self) -> Result<JsValue, JsValue> {
        #[derive(Serialize)]
        struct Summary<'a> {
            name: &'a str,
            examples: usize,
        }
        let state = self.state.borrow();
        let list: Vec<Summary> = state
            .relations
            .iter()
            .map(|r| Summary {
                name: &r.name,
                examples: r.examples.len(),
            })
            .collect();
        to_js(&list)
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
        let state = self.state.borrow();
        SupportSet {
            relations: state
                .relations
                .iter()
                .map(|r| RelationExamples {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    examples: r.examples.iter().map(|(input, _)| input.clone()).collect(),
                })
                .collect(),
            none_threshold: state.none_threshold,
        }
        .to_json()
    }

    /// Replaces the support set with one from JSON; every example is encoded once.
    #[wasm_bindgen(js_name = loadSupportSet)]
    pub fn load_support_set(&self, json: String) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let set = SupportSet::from_json(&json, "support set").map_err(js_error)?;
            let parsed = set.parse().map_err(js_error)?;
            let instances: Vec<RelationInstance> = parsed
                .relations
                .iter()
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            let mut vectors = encode_instances(&state, &instances).await?.into_iter();
            let relations = set
                .relations
                .iter()
                .zip(&parsed.relations)
                .map(|(given, (name, _))| StoredRelation {
                    name: name.clone(),
                    description: given.description.clone(),
                    examples: given.examples.iter().cloned().zip(vectors.by_ref()).collect(),
                })
                .collect();
            let mut state = state.borrow_mut();
            state.relations = relations;
            state.none_threshold = parsed.none_threshold;
            Ok(JsValue::from(state.relations.len() as u32))
        })
    }
}
