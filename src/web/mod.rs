//! The JavaScript API, compiled only for wasm32 (wasm-bindgen).
//!
//! A thin binding over [`crate::extractor::Extractor`]: it parses JavaScript arguments, turns
//! errors into `Error`s with a `kind`, and shares the extractor (`Rc`) with every `Promise` in
//! flight (GPU results are read back asynchronously; the extractor holds no borrow across an
//! `await`). No path on user input panics;
//! every error becomes a rejected promise (an `Error` with the library's message and a `kind`:
//! input, model, device, ...).

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::checkpoint::{Manifest, ModelFiles};
use crate::engine::EngineRequest;
use crate::extractor::Extractor as Live;
use crate::fewshot::document::{MentionOptions, check_marked};
use crate::fewshot::mention_head::MentionHead;
use crate::fewshot::{ExampleInput, RelationText, SupportSet};
use crate::relation_encoder::RelationEncoder;
use crate::text::CharSpan;
use crate::text::mentions::EntityList;

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

/// Makes the calling Web Worker a thread of the CPU engine's pool; never returns (the worker
/// sleeps in `memory.atomic.wait32` between products). Only the threaded build (wasm atomics,
/// shared memory) has it; the package's `thread-worker.js` calls it.
#[cfg(target_feature = "atomics")]
#[wasm_bindgen(js_name = joinThreadPool)]
pub fn join_thread_pool() {
    crate::engine::kernels::threads::ThreadPool::for_engines().work()
}

/// Threads the CPU engine's pool has now (the caller and the workers that joined it).
#[wasm_bindgen(js_name = threadPoolSize)]
pub fn thread_pool_size() -> usize {
    crate::engine::kernels::threads::ThreadPool::for_engines().threads()
}

/// The engine names `Extractor.create` takes in this build (checked before a model downloads).
#[wasm_bindgen(js_name = engineNames)]
pub fn engine_names() -> Vec<String> {
    EngineRequest::names().into_iter().map(String::from).collect()
}

/// Parses and checks a `manifest.json` text (the same checks as `tkre`): resolves to the
/// manifest as an object, or throws an `Error` with kind "model" that says what is wrong.
#[wasm_bindgen(js_name = parseManifest)]
pub fn parse_manifest(text: &str, origin: &str) -> Result<JsValue, JsValue> {
    to_js(&Manifest::parse(text, origin).map_err(js_error)?)
}

/// A loaded model with a support set, ready to classify: the library's
/// [`crate::extractor::Extractor`], shared by the promises in flight.
#[wasm_bindgen]
pub struct Extractor {
    inner: Rc<Live>,
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

/// A prediction as JavaScript sees it: camelCase, with the snake_case name of earlier versions
/// kept (deprecated) for one version.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PredictionJs<'a> {
    ranked: &'a [crate::fewshot::RelationScore],
    none_of_the_above: bool,
    none_probability: f32,
    #[serde(rename = "none_of_the_above")]
    deprecated_none_of_the_above: bool,
}

impl<'a> From<&'a crate::fewshot::Prediction> for PredictionJs<'a> {
    fn from(p: &'a crate::fewshot::Prediction) -> Self {
        Self {
            ranked: &p.ranked,
            none_of_the_above: p.none_of_the_above,
            none_probability: p.none_probability,
            deprecated_none_of_the_above: p.none_of_the_above,
        }
    }
}

/// `extractSentences`' options (fields checked by [`check_fields`]).
#[derive(Deserialize, Default)]
struct ExtractOptions {
    #[serde(default)]
    entities: Option<serde_json::Value>,
    #[serde(default)]
    mentions: Option<Vec<CharSpan>>,
    #[serde(default)]
    propose: Option<bool>,
    #[serde(default)]
    threshold: Option<f32>,
}

/// The sentences of a document as code-point spans (UAX #29 with abbreviations kept, long
/// sentences cut), for `extractSentences`.
#[wasm_bindgen(js_name = splitSentences)]
pub fn split_sentences(text: &str) -> Result<JsValue, JsValue> {
    to_js(&crate::text::sentences::split_sentences(text))
}

/// One answer of a batch classification: a prediction, or the error of that query alone.
#[derive(Serialize)]
#[serde(untagged)]
enum ClassifyItem<'a> {
    Prediction(PredictionJs<'a>),
    Error { error: String, kind: &'static str },
}

/// `what`: "examples" or "queries", as the caller named them.
fn parse_example_inputs(inputs: JsValue, what: &str) -> Result<Vec<ExampleInput>, JsValue> {
    serde_wasm_bindgen::from_value(inputs).map_err(|e| {
        js_error(format!(
            "{what} must be an array of marked sentences (\"[E1]..[/E1] .. [E2]..[/E2]\") or \
             {{text, head: {{start, end}}, tail: {{start, end}}}} objects: {e}"
        ))
    })
}

#[wasm_bindgen]
impl Extractor {
    /// Loads a model from the bytes of its three files and its manifest's text (whose
    /// `max_length` and `representation` it follows). `engine`: "auto", "webgpu" or "cpu"
    /// (`auto`: WebGPU where the browser has it, else the CPU).
    pub async fn create(
        config_json: Vec<u8>,
        model_safetensors: Vec<u8>,
        tokenizer_json: Vec<u8>,
        manifest_json: Option<String>,
        engine: String,
    ) -> Result<Extractor, JsValue> {
        let request = EngineRequest::parse(&engine).map_err(js_error)?;
        let manifest = manifest_json
            .map(|text| Manifest::parse(&text, "manifest.json"))
            .transpose()
            .map_err(js_error)?;
        let files = ModelFiles {
            config_json,
            weights_safetensors: model_safetensors,
            tokenizer_json,
        };
        let encoder = RelationEncoder::create(files, request).await.map_err(js_error)?;
        if let Some(manifest) = manifest {
            encoder
                .follow_manifest(&manifest, "manifest.json")
                .map_err(js_error)?;
        }
        Ok(Extractor {
            inner: Rc::new(Live::new(encoder)),
        })
    }

    /// Maximum tokens per sentence, [CLS]/[SEP] included (default 256; capped by the model's
    /// position table). Longer relation instances keep a window around both entities;
    /// longer sentences for `embed` are cut.
    #[wasm_bindgen(getter, js_name = maxLength)]
    pub fn max_length(&self) -> usize {
        self.inner.encoder.max_len()
    }

    /// Sets the maximum tokens per sentence; an error outside 8 .. the model's position table
    /// (a method, not a setter: wasm-bindgen setters cannot report errors).
    #[wasm_bindgen(js_name = setMaxLength)]
    pub fn set_max_length(&self, tokens: usize) -> Result<(), JsValue> {
        self.inner.encoder.set_max_len(tokens).map_err(js_error)
    }

    /// The engine: "webgpu" or "cpu" (in the comparison build also "burn-ndarray",
    /// "burn-webgpu").
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.encoder.engine.name().to_string()
    }

    /// CPU threads a pass computes on: more than one on the CPU engine of the threaded build
    /// once its Web Workers have joined (a cross-origin isolated page); one on WebGPU.
    #[wasm_bindgen(getter)]
    pub fn threads(&self) -> usize {
        self.inner.encoder.engine.threads()
    }

    /// On the WebGPU engine, a promise that resolves with why the device was lost, if it ever
    /// is (wgpu's device-lost callback: `GPUDevice.lost`); `undefined` on the CPU, or after the
    /// first call.
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> Option<js_sys::Promise> {
        let crate::engine::Engine::WebGpu(engine) = &self.inner.encoder.engine else {
            return None;
        };
        let lost = engine.device_lost()?;
        Some(future_to_promise(async move {
            match lost.await {
                Some(why) => Ok(JsValue::from(why)),
                // The engine was freed first: the device was never lost under it.
                None => std::future::pending().await,
            }
        }))
    }

    /// Destroys the WebGPU device, which the browser reports exactly as a lost device (a test
    /// hook for the recovery path); an error on the CPU engine.
    #[wasm_bindgen(js_name = destroyDevice)]
    pub fn destroy_device(&self) -> Result<(), JsValue> {
        match &self.inner.encoder.engine {
            crate::engine::Engine::WebGpu(engine) => {
                engine.destroy_device();
                Ok(())
            }
            _ => Err(js_error(
                "destroyDevice: this extractor does not run on WebGPU".to_string(),
            )),
        }
    }

    /// Why that engine was chosen.
    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        let mut reason = self.inner.encoder.engine_reason.clone();
        if self.inner.encoder.engine.uses_int8() {
            reason.push_str("; int8 weights multiplied in integers");
        }
        reason
    }

    /// Adds a relation: `{name?, description?, examples?}`; it needs examples, text, or both
    /// (text alone: zero-shot). Its text and examples are encoded once, now. Resolves to its
    /// example count.
    #[wasm_bindgen(js_name = addRelation)]
    pub fn add_relation(&self, key: String, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
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
            let count = inner
                .add_relation(&key, text, options.examples.unwrap_or_default())
                .await
                .map_err(js_error)?;
            Ok(JsValue::from(count as u32))
        })
    }

    /// Replaces a relation's text, `{name?, description?}` (null clears it; a relation without
    /// examples must keep some). Encoded once, now.
    #[wasm_bindgen(js_name = setRelationText)]
    pub fn set_relation_text(&self, key: String, text: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let text = parse_text(text, "setRelationText")?;
            inner.set_relation_text(&key, text).await.map_err(js_error)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Adds examples to a relation (created if new). Each example is encoded once, now.
    /// Resolves to the relation's example count.
    #[wasm_bindgen(js_name = addExamples)]
    pub fn add_examples(&self, relation: String, examples: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let examples = parse_example_inputs(examples, "examples")?;
            let count = inner.add_examples(&relation, examples).await.map_err(js_error)?;
            Ok(JsValue::from(count as u32))
        })
    }

    /// Removes one example (by index) from a relation; the relation goes when it has neither
    /// examples nor text left.
    #[wasm_bindgen(js_name = removeExample)]
    pub fn remove_example(&self, relation: &str, index: usize) -> Result<(), JsValue> {
        self.inner.remove_example(relation, index).map_err(js_error)
    }

    /// Removes a relation with all its examples.
    #[wasm_bindgen(js_name = removeRelation)]
    pub fn remove_relation(&self, relation: &str) -> Result<(), JsValue> {
        self.inner.remove_relation(relation).map_err(js_error)
    }

    /// Sets (a number in -1..1) or clears (null/undefined) the none-of-the-above threshold.
    #[wasm_bindgen(js_name = setNoneThreshold)]
    pub fn set_none_threshold(&self, threshold: Option<f32>) -> Result<(), JsValue> {
        self.inner.set_none_threshold(threshold).map_err(js_error)
    }

    /// The relations: `[{key, name, description?, examples}]` (`name` is the key when the
    /// relation has no display name; `examples` is a count).
    pub fn relations(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.relations())
    }

    /// Classifies marked sentences (or `{text, head, tail}` objects) with one encoder pass.
    /// Resolves to one item per query: `{ranked: [{relation, probability, similarity}],
    /// noneOfTheAbove, noneProbability}` (and `none_of_the_above`, deprecated), or, for a query
    /// that cannot be read, `{error, kind}` in its place; the others are still answered.
    /// `first`: the number of queries before these in the caller's list, so that an error
    /// names the query by its place there (the package sends long lists in slices).
    pub fn classify(&self, queries: JsValue, first: Option<u32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            // Read one by one, so that a malformed query is that query's error alone.
            let values: Vec<serde_json::Value> = serde_wasm_bindgen::from_value(queries)
                .map_err(|e| js_error(format!("classify takes a query or an array of queries: {e}")))?;
            let queries = values
                .into_iter()
                .map(|value| {
                    serde_json::from_value::<ExampleInput>(value)
                        .map_err(|e| crate::TkreError::Instance(e.to_string()))
                        .and_then(|input| input.to_instance())
                })
                .collect();
            let first = first.unwrap_or(0) as usize;
            let results: Vec<_> = (inner.classify_each(queries).await.map_err(js_error)?)
                .into_iter()
                .enumerate()
                .map(|(i, result)| result.map_err(|e| e.with_item("query", first + i)))
                .collect();
            let items: Vec<ClassifyItem> = results
                .iter()
                .map(|result| match result {
                    Ok(prediction) => ClassifyItem::Prediction(prediction.into()),
                    Err(e) => ClassifyItem::Error {
                        error: e.to_string(),
                        kind: e.kind(),
                    },
                })
                .collect();
            to_js(&items)
        })
    }

    /// Sentence embeddings, one per text: the L2-normalised mean of the last hidden states
    /// (what `tkre embed` and sentence-transformers compute), in one encoder pass.
    pub fn embed(&self, texts: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let texts: Vec<String> = serde_wasm_bindgen::from_value(texts)
                .map_err(|e| js_error(format!("embed takes an array of strings: {e}")))?;
            if texts.is_empty() {
                return to_js(&Vec::<Vec<f32>>::new());
            }
            // One Float32Array per text: copied in one go, where serde would cross into JS
            // once per number.
            let vectors = js_sys::Array::new();
            for vector in inner.embed(&texts).await.map_err(js_error)? {
                vectors.push(&js_sys::Float32Array::from(vector.as_slice()));
            }
            Ok(vectors.into())
        })
    }

    /// Sets the learned mention proposer from the text of the model's `mention_head.json`
    /// (`undefined`: the rules propose).
    #[wasm_bindgen(js_name = setMentionHead)]
    pub fn set_mention_head(&self, json: Option<String>) -> Result<(), JsValue> {
        let hidden = self.inner.encoder.config.hidden_size;
        let head = json
            .map(|text| MentionHead::from_json(&text, "mention_head.json", hidden))
            .transpose()
            .map_err(js_error)?;
        self.inner.set_mention_head(head).map_err(js_error)
    }

    /// Relations in some sentences of a document: `sentences` are spans (code points) of
    /// `text` from `splitSentences`, and `options` `{entities?, mentions?, propose?,
    /// threshold?}` (`entities`: names or `{name, aliases}`; `mentions`: marked spans).
    /// Resolves to one `{sentence, mentions, triples}` per sentence. The package sends a
    /// document's sentences in slices, with the text of each slice and its `offset`.
    #[wasm_bindgen(js_name = extractSentences)]
    pub fn extract_sentences(
        &self,
        text: String,
        offset: u32,
        sentences: JsValue,
        options: JsValue,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            check_fields(
                &options,
                &["entities", "mentions", "propose", "threshold"],
                "extract options",
            )?;
            let options: ExtractOptions = if options.is_undefined() || options.is_null() {
                ExtractOptions::default()
            } else {
                serde_wasm_bindgen::from_value(options)
                    .map_err(|e| js_error(format!("extract options: {e}")))?
            };
            let sentences: Vec<CharSpan> = serde_wasm_bindgen::from_value(sentences).map_err(|e| {
                js_error(format!(
                    "extractSentences takes sentence spans [{{start, end}}]: {e}"
                ))
            })?;
            let offset = offset as usize;
            let shift = |span: CharSpan| -> Result<CharSpan, JsValue> {
                span.start
                    .checked_sub(offset)
                    .filter(|_| span.end >= span.start)
                    .map(|start| CharSpan::new(start, span.end - offset))
                    .ok_or_else(|| {
                        js_error(format!(
                            "span {}..{} is before this slice of the document",
                            span.start, span.end
                        ))
                    })
            };
            let local: Vec<CharSpan> = sentences.into_iter().map(shift).collect::<Result<_, _>>()?;
            let length = text.chars().count();
            if let Some(bad) = local.iter().find(|s| s.end > length || s.start >= s.end) {
                return Err(js_error(format!(
                    "sentence {}..{} is empty or outside the text",
                    bad.start + offset,
                    bad.end + offset
                )));
            }
            let entities = match options.entities {
                // An array of names, or the lines form as one string.
                Some(serde_json::Value::String(lines)) => {
                    Some(EntityList::parse(&lines, "extract options.entities").map_err(js_error)?)
                }
                Some(list) => {
                    Some(EntityList::parse(&list.to_string(), "extract options.entities").map_err(js_error)?)
                }
                None => None,
            };
            // Marked mentions are document offsets: those in this slice, shifted into it.
            let marked: Vec<CharSpan> = options
                .mentions
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.start >= offset && m.end <= offset + length)
                .map(|m| CharSpan::new(m.start - offset, m.end - offset))
                .collect();
            check_marked(&text, &marked).map_err(js_error)?;
            let mention_options = MentionOptions {
                marked,
                entities,
                propose: options.propose.unwrap_or(true),
            };
            let mut results = inner
                .extract_sentences(&text, &local, &mention_options, options.threshold)
                .await
                .map_err(js_error)?;
            for result in &mut results {
                result.shift(offset);
            }
            to_js(&results)
        })
    }

    /// The support set as JSON (the same format `tkre classify --support` reads).
    #[wasm_bindgen(js_name = supportSetJson)]
    pub fn support_set_json(&self) -> String {
        self.inner.support_set().to_json()
    }

    /// Replaces the support set with one from JSON; every example and relation text is
    /// encoded once.
    #[wasm_bindgen(js_name = loadSupportSet)]
    pub fn load_support_set(&self, json: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let set = SupportSet::from_json(&json, "support set").map_err(js_error)?;
            let count = inner.load_support_set(&set).await.map_err(js_error)?;
            Ok(JsValue::from(count as u32))
        })
    }
}
