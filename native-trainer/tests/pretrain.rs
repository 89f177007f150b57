//! Pre-training on the CPU with a tiny encoder (2 layers, hidden 32) and the base model's
//! tokenizer: masking rates, the SCL loss and its gradients against an independent f64
//! computation, falling losses, and resume == uninterrupted.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use safetensors::SafeTensors;
use tkre::model::EncoderConfig;
use tkre::text::{RelationInstance, encode_instance};
use tkre_trainer::pretrain::corpus::{CorpusReport, load_files};
use tkre_trainer::pretrain::masking::{MaskProbabilities, TokenRole, mask_instance, token_roles};
use tkre_trainer::pretrain::model::{PretrainModel, SpanContrastHeadConfig};
use tkre_trainer::pretrain::train::StepMetrics;
use tkre_trainer::pretrain::{PretrainConfig, Session, Stage, TrainOutcome, pretrain};

use common::{json_lines, tiny_checkpoint, tiny_init, tokenizer};

/// burn's random generator (dropout, initialisation) is one per device, shared by the tests
/// of this binary, which run in parallel: tests that depend on its seed take this lock.
static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// FewRel records of 6 relations x 8 (the project's test fixture).
fn small_corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fewrel_small.json")
}

fn tiny_config(init: &Path, stage: Stage) -> PretrainConfig {
    PretrainConfig {
        stage,
        init: Some(init.to_path_buf()),
        corpus: vec![small_corpus()],
        batch_size: 8,
        max_length: 64,
        learning_rate: 2e-3,
        warmup_ratio: 0.1,
        checkpoint_every: 2,
        ..Default::default()
    }
}

fn quiet() -> Session {
    Session {
        quiet: true,
        ..Default::default()
    }
}

fn metrics(out: &Path) -> Vec<StepMetrics> {
    json_lines(&out.join("metrics.jsonl"))
}

fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

/// Measured over every token of 48 FewRel sentences masked 300 times (about 10^5 draws per
/// role): each rate is within 0.01 of its probability (> 5 standard deviations for the
/// rarest role), and special and marker tokens are never masked.
#[test]
fn masking_rates_match_the_method() {
    let tokenizer = tokenizer();
    let mask_id = tokenizer.token_id("[MASK]").unwrap();
    let mut report = CorpusReport::default();
    let records = load_files(&[small_corpus()], &mut report).unwrap();
    assert!(records.len() >= 40);
    let encoded: Vec<_> = records
        .iter()
        .map(|r| {
            let encoded = encode_instance(&tokenizer, &r.instance, 128).unwrap();
            let roles = token_roles(&encoded);
            (encoded, roles)
        })
        .collect();
    let p = MaskProbabilities::default();
    let mut rng = StdRng::seed_from_u64(11);
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for _ in 0..300 {
        for (encoded, roles) in &encoded {
            let masked = mask_instance(encoded, roles, &p, mask_id, &mut rng);
            let mut is_masked = vec![false; roles.len()];
            for &(position, original) in &masked.targets {
                is_masked[position] = true;
                assert_eq!(original, encoded.ids[position]);
                assert_eq!(masked.input_ids[position], mask_id);
            }
            for (i, role) in roles.iter().enumerate() {
                let name = match role {
                    TokenRole::Special => "special",
                    TokenRole::Marker => "marker",
                    TokenRole::Entity => "entity",
                    TokenRole::Relation => "relation",
                    TokenRole::Other => "other",
                };
                let entry = counts.entry(name).or_default();
                entry.0 += usize::from(is_masked[i]);
                entry.1 += 1;
                if !is_masked[i] {
                    assert_eq!(masked.input_ids[i], encoded.ids[i]);
                }
            }
        }
    }
    let rate = |name: &str| {
        let (masked, total) = counts[name];
        assert!(total > 10_000, "{name}: only {total} tokens");
        masked as f64 / total as f64
    };
    assert_eq!(counts["special"].0, 0);
    assert_eq!(counts["marker"].0, 0);
    for (name, expected) in [("relation", 0.8), ("entity", 0.5), ("other", 0.2)] {
        let measured = rate(name);
        assert!(
            (measured - expected).abs() < 0.01,
            "{name}: measured {measured}, expected {expected}"
        );
    }
}

/// Reference SCL loss in f64, written from the method's definition: project (Linear-ReLU-
/// Linear, burn's `x W + b` layout), L2-normalise, cosine / temperature, cross-entropy with
/// the positive as target, mean over weighted samples.
#[allow(clippy::too_many_arguments)]
fn reference_scl(
    hidden: &[f64],
    shape: [usize; 3],
    positive: &[f64],
    negative: &[f64],
    relations: &[usize],
    weights: &[f64],
    anchors: &[f64],
    w1: &[f64],
    b1: &[f64],
    w2: &[f64],
    b2: &[f64],
    temperature: f64,
) -> f64 {
    let [batch, seq, h] = shape;
    let linear = |x: &[f64], w: &[f64], b: &[f64]| -> Vec<f64> {
        (0..h)
            .map(|j| b[j] + (0..h).map(|i| x[i] * w[i * h + j]).sum::<f64>())
            .collect()
    };
    let project = |x: &[f64]| -> Vec<f64> {
        let first: Vec<f64> = linear(x, w1, b1).into_iter().map(|v| v.max(0.0)).collect();
        let out = linear(&first, w2, b2);
        let norm = out.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        out.into_iter().map(|v| v / norm).collect()
    };
    let pool = |weights: &[f64], row: usize| -> Vec<f64> {
        (0..h)
            .map(|k| {
                (0..seq)
                    .map(|t| weights[row * seq + t] * hidden[(row * seq + t) * h + k])
                    .sum()
            })
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut total = 0.0;
    for row in 0..batch {
        let anchor = project(&anchors[relations[row] * h..(relations[row] + 1) * h]);
        let sp = dot(&anchor, &project(&pool(positive, row))) / temperature;
        let sn = dot(&anchor, &project(&pool(negative, row))) / temperature;
        let m = sp.max(sn);
        let nll = m + ((sp - m).exp() + (sn - m).exp()).ln() - sp;
        total += weights[row] * nll;
    }
    total / weights.iter().sum::<f64>().max(1.0)
}

fn values(t: Tensor<2>) -> Vec<f64> {
    t.into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

#[test]
fn scl_loss_and_gradients_match_an_independent_computation() {
    let _rng = lock_rng();
    let device = Device::flex().autodiff();
    device.seed(3);
    let (batch, seq, h, relations_n) = (3, 5, 4, 2);
    let head = SpanContrastHeadConfig::new(h, relations_n).init(&device);
    let hidden_values: Vec<f32> = (0..batch * seq * h)
        .map(|i| ((i * 37 % 23) as f32 / 11.0) - 1.0)
        .collect();
    let hidden = Tensor::<3>::from_data(TensorData::new(hidden_values.clone(), [batch, seq, h]), &device)
        .require_grad();
    // Row 0: positive = tokens 1-2, negative = token 4. Row 1: positive = token 3, negative =
    // tokens 0-1. Row 2: excluded (weight 0), so it must not contribute.
    let mut positive = vec![0f32; batch * seq];
    let mut negative = vec![0f32; batch * seq];
    positive[1] = 0.5;
    positive[2] = 0.5;
    negative[4] = 1.0;
    positive[seq + 3] = 1.0;
    negative[seq] = 0.5;
    negative[seq + 1] = 0.5;
    let relations = [1usize, 0, 1];
    let weights = [1f32, 1.0, 0.0];
    let temperature = 0.1;
    let loss = head.loss(
        hidden.clone(),
        Tensor::from_data(TensorData::new(positive.clone(), [batch, seq]), &device),
        Tensor::from_data(TensorData::new(negative.clone(), [batch, seq]), &device),
        Tensor::from_data(
            TensorData::new(relations.iter().map(|&r| r as i64).collect::<Vec<_>>(), [batch]),
            &device,
        ),
        Tensor::from_data(TensorData::new(weights.to_vec(), [batch]), &device),
        temperature,
    );
    let loss_value = loss.clone().into_scalar::<f32>() as f64;
    let grads = loss.backward();
    let grad_hidden: Vec<f64> = hidden
        .grad(&grads)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let grad_anchors = values(head.anchors.weight.val().grad(&grads).unwrap());

    let param = |p: &Param<Tensor<2>>| values(p.val());
    let vector = |p: &Option<Param<Tensor<1>>>| -> Vec<f64> {
        p.as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect()
    };
    let anchors = param(&head.anchors.weight);
    let (w1, b1) = (
        param(&head.projection.first.weight),
        vector(&head.projection.first.bias),
    );
    let (w2, b2) = (
        param(&head.projection.second.weight),
        vector(&head.projection.second.bias),
    );
    let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (hidden64, pos64, neg64, w64) = (
        to64(&hidden_values),
        to64(&positive),
        to64(&negative),
        to64(&weights),
    );
    let reference = |hidden: &[f64], anchors: &[f64]| {
        reference_scl(
            hidden,
            [batch, seq, h],
            &pos64,
            &neg64,
            &relations,
            &w64,
            anchors,
            &w1,
            &b1,
            &w2,
            &b2,
            temperature,
        )
    };
    let expected = reference(&hidden64, &anchors);
    assert!(
        (loss_value - expected).abs() < 1e-5,
        "loss {loss_value} vs reference {expected}"
    );
    assert!(expected > 0.0);

    // Gradients by central differences of the reference.
    let eps = 1e-6;
    let numeric = |values: &[f64], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
        (0..values.len())
            .map(|i| {
                let mut up = values.to_vec();
                let mut down = values.to_vec();
                up[i] += eps;
                down[i] -= eps;
                (f(&up) - f(&down)) / (2.0 * eps)
            })
            .collect()
    };
    let expected_hidden = numeric(&hidden64, &|x| reference(x, &anchors));
    let expected_anchors = numeric(&anchors, &|a| reference(&hidden64, a));
    let close = |got: &[f64], want: &[f64], what: &str| {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{what}: reference gradient is zero");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-3 * scale.max(1.0), "{what}[{i}]: {g} vs {w}");
        }
    };
    close(&grad_hidden, &expected_hidden, "d loss / d hidden");
    close(&grad_anchors, &expected_anchors, "d loss / d anchors");
    // The excluded row gets no gradient.
    assert!(grad_hidden[2 * seq * h..].iter().all(|g| g.abs() < 1e-9));
}

#[test]
fn both_stages_lower_their_losses_and_write_a_loadable_checkpoint() {
    let _rng = lock_rng();
    let (dir, init) = tiny_init();

    let stage1 = dir.path().join("stage1");
    let config = PretrainConfig {
        epochs: 5,
        ..tiny_config(&init, Stage::Mslm)
    };
    assert_eq!(
        pretrain(&config, &stage1, &quiet()).unwrap(),
        TrainOutcome::Finished { steps: 30 }
    );
    let m = metrics(&stage1);
    assert_eq!(m.len(), 30);
    let mean =
        |xs: &[StepMetrics], f: &dyn Fn(&StepMetrics) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
    let (first, last) = (
        mean(&m[..6], &|s| s.mslm.unwrap()),
        mean(&m[24..], &|s| s.mslm.unwrap()),
    );
    assert!(
        last < first * 0.9,
        "stage 1 MSLM loss did not fall: {first} -> {last}"
    );

    // Stage 2 starts from stage 1's output (its trained MLM head included).
    let stage2 = dir.path().join("stage2");
    let config = PretrainConfig {
        epochs: 5,
        learning_rate: 1e-3,
        ..tiny_config(&stage1, Stage::Scl)
    };
    pretrain(&config, &stage2, &quiet()).unwrap();
    let m = metrics(&stage2);
    assert!(m.iter().all(|s| s.scl.is_some() && s.scl_samples > 0));
    let (first, last) = (
        mean(&m[..6], &|s| s.scl.unwrap()),
        mean(&m[24..], &|s| s.scl.unwrap()),
    );
    assert!(
        last < first * 0.8,
        "stage 2 SCL loss did not fall: {first} -> {last}"
    );
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stage2.join("pretrain.json")).unwrap()).unwrap();
    assert_eq!(info["relations"].as_array().unwrap().len(), 6);

    // The result is a checkpoint the rest of the project loads.
    let encoder = tkre::RelationEncoder::load_dir(&stage2, tkre::EngineRequest::Auto).unwrap();
    let instance = RelationInstance::from_marked("[E1]Ann[/E1] works at [E2]Acme[/E2].").unwrap();
    let vectors = encoder.encode_instances(&[instance], 8).unwrap();
    assert!(vectors[0].iter().all(|v| v.is_finite()));
    let names = tensors(&stage2.join("model.safetensors"));
    assert!(
        names.contains_key("bert.embeddings.LayerNorm.weight"),
        "{:?}",
        names.keys().take(5).collect::<Vec<_>>()
    );
    assert!(names.contains_key("cls.predictions.transform.dense.weight"));
    assert!(!names.keys().any(|n| n.starts_with("scl.")));
}

#[test]
fn resume_gives_the_same_parameters_as_an_uninterrupted_run() {
    let _rng = lock_rng();
    let (dir, init) = tiny_init();
    let config = PretrainConfig {
        max_steps: Some(6),
        ..tiny_config(&init, Stage::Scl)
    };

    let straight = dir.path().join("straight");
    assert_eq!(
        pretrain(&config, &straight, &quiet()).unwrap(),
        TrainOutcome::Finished { steps: 6 }
    );

    let interrupted = dir.path().join("interrupted");
    let stop = Session {
        stop_after: Some(3),
        ..quiet()
    };
    assert_eq!(
        pretrain(&config, &interrupted, &stop).unwrap(),
        TrainOutcome::Stopped { step: 3 }
    );
    assert!(!interrupted.join("model.safetensors").exists());
    // Without --resume an existing run is never overwritten.
    let error = pretrain(&config, &interrupted, &quiet()).unwrap_err().to_string();
    assert!(error.contains("--resume"), "{error}");
    // Different settings are refused on resume.
    let other = PretrainConfig {
        learning_rate: 1e-4,
        ..config.clone()
    };
    let resume = Session {
        resume: true,
        ..quiet()
    };
    assert!(
        pretrain(&other, &interrupted, &resume)
            .unwrap_err()
            .to_string()
            .contains("different settings")
    );
    assert_eq!(
        pretrain(&config, &interrupted, &resume).unwrap(),
        TrainOutcome::Finished { steps: 6 }
    );

    let (ma, mb) = (metrics(&straight), metrics(&interrupted));
    assert_eq!(mb.len(), 6);
    for (x, y) in ma.iter().zip(&mb) {
        assert_eq!(x.step, y.step);
        assert!(
            (x.loss - y.loss).abs() < 1e-5,
            "step {}: {} vs {}",
            x.step,
            x.loss,
            y.loss
        );
    }
    let (a, b) = (
        tensors(&straight.join("model.safetensors")),
        tensors(&interrupted.join("model.safetensors")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, values) in &a {
        let diff = values
            .iter()
            .zip(&b[name])
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff <= 1e-6, "{name}: max difference {diff}");
    }
}

/// A checkpoint with an MLM head (stage 1's output) gives stage 2 that head, and says so;
/// one without (the base checkpoint) keeps the fresh head and says that.
#[test]
fn the_starting_checkpoints_mlm_head_is_loaded_and_reported() {
    let _rng = lock_rng();
    let (dir, init) = tiny_init();
    let weights = init.join("model.safetensors");
    let saved = tensors(&weights);

    let config = EncoderConfig::tiny(tokenizer().vocab_size());
    let device = Device::flex();
    device.seed(99);
    let fresh = PretrainModel::new(&config, 0, &device);
    let (loaded, has_head) = tkre_trainer::pretrain::train::load_init(fresh, &weights).unwrap();
    assert!(
        has_head,
        "the head in {} was not reported as loaded",
        weights.display()
    );
    let dense: Vec<f32> = loaded
        .cls
        .predictions
        .transform
        .dense
        .weight
        .val()
        .transpose()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(dense, saved["cls.predictions.transform.dense.weight"]);
    let head_bias = |model: &PretrainModel| -> Vec<f32> {
        model
            .cls
            .predictions
            .bias
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(head_bias(&loaded), saved["cls.predictions.bias"]);

    // Without cls.* tensors: the encoder loads, the head stays as initialised.
    let headless = dir.path().join("headless.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("cls."))
        .collect();
    safetensors::serialize_to_file(kept, None, &headless).unwrap();
    let fresh = PretrainModel::new(&config, 0, &device);
    let before = head_bias(&fresh);
    let (loaded, has_head) = tkre_trainer::pretrain::train::load_init(fresh, &headless).unwrap();
    assert!(!has_head);
    let after = head_bias(&loaded);
    assert_eq!(before, after);
}

/// [`tiny_init`] with dropout off, for runs that must compute the same numbers on two devices.
fn tiny_init_without_dropout() -> (tempfile::TempDir, PathBuf) {
    let (dir, init) = tiny_init();
    let path = init.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["hidden_dropout_prob"] = 0.0.into();
    config["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    (dir, init)
}

/// Data-parallel training (the batch split over two devices, here burn's flex and ndarray CPU
/// backends, each replica in its own thread) computes the same steps as one device: with
/// dropout off, the losses and the trained parameters agree to float rounding.
#[test]
fn data_parallel_over_two_devices_matches_one_device() {
    let _rng = lock_rng();
    // Dropout off, so that the only difference left is where each row is computed.
    let (dir, init) = tiny_init_without_dropout();

    let run = |device: &str| {
        let out = dir.path().join(device.replace(',', "+"));
        let config = PretrainConfig {
            max_steps: Some(4),
            // An odd batch: the two shards differ in size (3 and 4 rows).
            batch_size: 7,
            device: device.into(),
            ..tiny_config(&init, Stage::Scl)
        };
        pretrain(&config, &out, &quiet()).unwrap();
        (metrics(&out), tensors(&out.join("model.safetensors")))
    };
    let (single, single_weights) = run("cpu");
    assert_eq!(single.len(), 4);
    // Two replicas on one CPU device (the same kernels, so only the summation order of the
    // gradients differs), then flex + ndarray (different kernels: ndarray alone differs from
    // flex by about 1e-4 after these steps, mostly in the rarely seen word embeddings,
    // whose AdamW updates divide tiny gradients by tiny second moments).
    for (devices, tolerance) in [("cpu,cpu", 1e-4f32), ("cpu,ndarray", 1e-3)] {
        let (parallel, parallel_weights) = run(devices);
        assert_eq!(parallel.len(), 4);
        for (a, b) in single.iter().zip(&parallel) {
            assert_eq!(
                (a.masked_tokens, a.scl_samples, a.tokens),
                (b.masked_tokens, b.scl_samples, b.tokens)
            );
            let close = |x: f64, y: f64| (x - y).abs() < 1e-4 * x.abs().max(1.0);
            assert!(
                close(a.mslm.unwrap(), b.mslm.unwrap()) && close(a.scl.unwrap(), b.scl.unwrap()),
                "{devices}, step {}: losses {:?} {:?} vs {:?} {:?}",
                a.step,
                a.mslm,
                a.scl,
                b.mslm,
                b.scl
            );
            assert!(close(a.loss, b.loss));
            // The norm of the summed gradients: wrong loss shares would change it.
            assert!(
                close(a.grad_norm, b.grad_norm),
                "{devices}, step {}: gradient norm {} vs {}",
                a.step,
                a.grad_norm,
                b.grad_norm
            );
        }
        let mut worst = (0.0f32, String::new());
        for (name, values) in &single_weights {
            for (x, y) in values.iter().zip(&parallel_weights[name]) {
                if (x - y).abs() > worst.0 {
                    worst = ((x - y).abs(), name.clone());
                }
            }
        }
        eprintln!(
            "{devices}: largest parameter difference {} in {}",
            worst.0, worst.1
        );
        assert!(
            worst.0 < tolerance,
            "{devices}: largest parameter difference {} in {}",
            worst.0,
            worst.1
        );
    }
}

/// Distillation: a student that keeps every layer of its teacher starts at zero loss; one
/// that keeps one of two layers learns to match the teacher (both losses fall) and is written
/// as a one-layer checkpoint the rest of the project loads.
#[test]
fn distillation_matches_the_teacher_and_writes_a_smaller_checkpoint() {
    let _rng = lock_rng();
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    tiny_checkpoint(&teacher);
    let distill = |layers: Vec<usize>, out: &Path, epochs: usize| {
        let config = PretrainConfig {
            stage: Stage::Distill,
            teacher: Some(teacher.clone()),
            student_layers: Some(layers),
            epochs,
            ..tiny_config(&teacher, Stage::Distill)
        };
        pretrain(&config, out, &quiet()).unwrap();
        metrics(out)
    };

    // Dropout is on during training, in the student only (the teacher is frozen and its
    // dropout off), so an identical student is off by dropout alone: small, not zero.
    let same = distill(vec![0, 1], &dir.path().join("same"), 1);
    let first = &same[0];
    assert!(first.masked_tokens == 0 && first.mslm.is_none() && first.scl.is_none());
    assert!(first.distill.unwrap() < 0.05, "identical student: {first:?}");

    let out = dir.path().join("student");
    let m = distill(vec![1], &out, 8);
    let mean =
        |xs: &[StepMetrics], f: &dyn Fn(&StepMetrics) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
    let (start, end) = (&m[..6], &m[m.len() - 6..]);
    for (name, f) in [
        (
            "representation",
            &(|s: &StepMetrics| s.distill.unwrap()) as &dyn Fn(&StepMetrics) -> f64,
        ),
        ("hidden", &|s: &StepMetrics| s.hidden.unwrap()),
    ] {
        let (a, b) = (mean(start, f), mean(end, f));
        assert!(b < a * 0.8, "{name} loss did not fall: {a} -> {b}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_hidden_layers"], 1);
    let encoder = tkre::RelationEncoder::load_dir(&out, tkre::EngineRequest::Auto).unwrap();
    assert_eq!(encoder.config.num_hidden_layers, 1);
    assert_eq!(
        encoder.hidden_states(&[vec![101, 2000, 102]]).unwrap()[0].len(),
        3 * encoder.config.hidden_size
    );
}

/// Reference relation-stage losses in f64, from their definitions: parts pooled and
/// L2-normalised; r_i = concatenated parts / sqrt(parts); supervised contrastive loss over
/// the rows with positives; text loss = cross-entropy of the mean part cosine with each text
/// (L2-normalised) over t, for rows with text.
#[allow(clippy::too_many_arguments)]
fn reference_relation_losses(
    hidden: &[f64],
    [b, seq, h]: [usize; 3],
    pooling: &[f64],
    parts: usize,
    labels: &[usize],
    texts: &[f64],
    text_rows: &[bool],
    t: f64,
) -> (f64, f64) {
    let unit = |v: Vec<f64>| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        v.into_iter().map(|x| x / n).collect::<Vec<f64>>()
    };
    let part = |row: usize, p: usize| -> Vec<f64> {
        unit(
            (0..h)
                .map(|k| {
                    (0..seq)
                        .map(|s| pooling[(row * parts + p) * seq + s] * hidden[(row * seq + s) * h + k])
                        .sum()
                })
                .collect(),
        )
    };
    let dot = |a: &[f64], c: &[f64]| a.iter().zip(c).map(|(x, y)| x * y).sum::<f64>();
    let reps: Vec<Vec<f64>> = (0..b)
        .map(|i| {
            (0..parts)
                .flat_map(|p| part(i, p))
                .map(|x| x / (parts as f64).sqrt())
                .collect()
        })
        .collect();
    let (mut contrastive, mut anchored) = (0.0, 0);
    for i in 0..b {
        let positives: Vec<usize> = (0..b).filter(|&j| j != i && labels[j] == labels[i]).collect();
        if positives.is_empty() {
            continue;
        }
        let logits: Vec<f64> = (0..b).map(|j| dot(&reps[i], &reps[j]) / t).collect();
        let others: Vec<f64> = (0..b).filter(|&j| j != i).map(|j| logits[j]).collect();
        let m = others.iter().cloned().fold(f64::MIN, f64::max);
        let log_z = m + others.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        contrastive += positives.iter().map(|&p| log_z - logits[p]).sum::<f64>() / positives.len() as f64;
        anchored += 1;
    }
    let r = texts.len() / h;
    let unit_texts: Vec<Vec<f64>> = (0..r).map(|q| unit(texts[q * h..(q + 1) * h].to_vec())).collect();
    let (mut text, mut with_text) = (0.0, 0);
    for i in 0..b {
        if !text_rows[i] {
            continue;
        }
        let logits: Vec<f64> = (0..r)
            .map(|q| (0..parts).map(|p| dot(&part(i, p), &unit_texts[q])).sum::<f64>() / parts as f64 / t)
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let log_z = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        text += log_z - logits[labels[i]];
        with_text += 1;
    }
    (contrastive / anchored as f64, text / with_text as f64)
}

#[test]
fn relation_losses_and_gradients_match_an_independent_computation() {
    use tkre_trainer::pretrain::model::{RelationBatch, relation_losses};
    let device = Device::flex().autodiff();
    let (b, seq, h, parts) = (5, 4, 3, 2);
    // Rows 0, 1 and 3 share relation 0, row 2 is relation 1 and alone (no positive), row 4 is
    // relation 1 too; row 3 has no text.
    let labels = [0usize, 0, 1, 0, 1];
    let text_rows = [true, true, true, false, true];
    let hidden_values: Vec<f32> = (0..b * seq * h)
        .map(|i| ((i * 29 % 17) as f32 / 8.0) - 1.0)
        .collect();
    let text_values: Vec<f32> = (0..2 * h).map(|i| ((i * 7 % 5) as f32 / 2.0) - 0.9).collect();
    let mut pooling = vec![0f32; b * parts * seq];
    for row in 0..b {
        pooling[(row * parts) * seq + (row % seq)] = 1.0;
        pooling[(row * parts + 1) * seq] = 0.5;
        pooling[(row * parts + 1) * seq + 3] = 0.5;
    }
    let hidden =
        Tensor::<3>::from_data(TensorData::new(hidden_values.clone(), [b, seq, h]), &device).require_grad();
    let texts = Tensor::<2>::from_data(TensorData::new(text_values.clone(), [2, h]), &device).require_grad();
    let mut positives = vec![0f32; b * b];
    for i in 0..b {
        for j in 0..b {
            if i != j && labels[i] == labels[j] {
                positives[i * b + j] = 1.0;
            }
        }
    }
    let batch = RelationBatch {
        positives: Tensor::from_data(TensorData::new(positives, [b, b]), &device),
        anchored: 5,
        texts: None,
        with_text: 4,
    };
    let t = 0.2;
    let (contrastive, text) = relation_losses(
        hidden.clone(),
        &Tensor::from_data(TensorData::new(pooling.clone(), [b, parts, seq]), &device),
        &batch,
        Some((
            texts.clone(),
            Tensor::from_data(
                TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [b]),
                &device,
            ),
            Tensor::from_data(
                TensorData::new(
                    text_rows
                        .iter()
                        .map(|&w| f32::from(u8::from(w)))
                        .collect::<Vec<_>>(),
                    [b],
                ),
                &device,
            ),
        )),
        t,
    );
    let (contrastive, text) = (contrastive.unwrap(), text.unwrap());
    let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let (hidden64, pooling64, texts64) = (to64(&hidden_values), to64(&pooling), to64(&text_values));
    let reference = |hidden: &[f64], texts: &[f64]| {
        reference_relation_losses(
            hidden,
            [b, seq, h],
            &pooling64,
            parts,
            &labels,
            texts,
            &text_rows,
            t,
        )
    };
    let (want_c, want_t) = reference(&hidden64, &texts64);
    let got_c = contrastive.clone().into_scalar::<f32>() as f64;
    let got_t = text.clone().into_scalar::<f32>() as f64;
    // All five rows have a positive except none: row 2's partner is row 4, so every row counts.
    assert!((got_c - want_c).abs() < 1e-5, "contrastive {got_c} vs {want_c}");
    assert!((got_t - want_t).abs() < 1e-5, "text {got_t} vs {want_t}");

    let grads = (contrastive + text).backward();
    let got_hidden = to64(
        &hidden
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    let got_texts = to64(
        &texts
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    let eps = 1e-6;
    let total = |h: &[f64], x: &[f64]| {
        let (c, t) = reference(h, x);
        c + t
    };
    let numeric = |values: &[f64], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
        (0..values.len())
            .map(|i| {
                let (mut up, mut down) = (values.to_vec(), values.to_vec());
                up[i] += eps;
                down[i] -= eps;
                (f(&up) - f(&down)) / (2.0 * eps)
            })
            .collect()
    };
    let want_hidden = numeric(&hidden64, &|x| total(x, &texts64));
    let want_texts = numeric(&texts64, &|x| total(&hidden64, x));
    for (what, got, want) in [
        ("hidden", &got_hidden, &want_hidden),
        ("texts", &got_texts, &want_texts),
    ] {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{what}: reference gradient is zero");
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(
                (g - w).abs() < 2e-3 * scale.max(1.0),
                "d loss / d {what}[{i}]: {g} vs {w}"
            );
        }
    }
}

/// A labelled corpus of `relations` relations x `per` sentences, each relation with its own
/// sentence pattern, as marked records; and its relation text.
fn pattern_corpus(path: &Path, prefix: &str, relations: usize, per: usize) -> BTreeMap<String, String> {
    let verbs = [
        "was born in",
        "works for",
        "is the capital of",
        "wrote",
        "founded",
        "married",
        "plays for",
        "was directed by",
        "flows into",
        "is located in",
        "was composed by",
        "succeeded",
    ];
    let mut lines = String::new();
    let mut texts = BTreeMap::new();
    for r in 0..relations {
        let label = format!("{prefix}{r}");
        let verb = verbs[r % verbs.len()];
        texts.insert(label.clone(), format!("{verb}: the head {verb} the tail"));
        for i in 0..per {
            let record = serde_json::json!({
                "marked": format!("In {} , [E1]Person{i}x{r}[/E1] {verb} [E2]Place{}y[/E2] ({prefix}).", 1900 + i, i * 7 + r),
                "relation": label,
            });
            lines.push_str(&format!("{record}\n"));
        }
    }
    std::fs::write(path, lines).unwrap();
    texts
}

#[test]
fn the_relation_stage_learns_relations_keeps_its_best_dev_model_and_stops_early() {
    let _rng = lock_rng();
    let (dir, init) = tiny_init();
    let train = dir.path().join("train.jsonl");
    let dev = dir.path().join("dev.jsonl");
    let mut texts = pattern_corpus(&train, "t", 6, 6);
    texts.extend(pattern_corpus(&dev, "d", 5, 3));
    let text_file = dir.path().join("texts.json");
    std::fs::write(&text_file, serde_json::to_string(&texts).unwrap()).unwrap();
    let out = dir.path().join("relation");
    let config = PretrainConfig {
        corpus: vec![train.clone()],
        relation_text: Some(text_file.clone()),
        dev: Some(dev.clone()),
        eval_every: 3,
        dev_episodes: 20,
        patience: 100,
        epochs: 6,
        batch_size: 12,
        per_relation: 3,
        learning_rate: 2e-3,
        mslm_weight: 0.0,
        ..tiny_config(&init, Stage::Relation)
    };
    let outcome = pretrain(&config, &out, &quiet()).unwrap();
    let m = metrics(&out);
    assert_eq!(outcome, TrainOutcome::Finished { steps: m.len() });
    assert_eq!(m.len(), 6 * 3, "36 records in batches of 4 relations x 3");
    assert!(
        m.iter()
            .all(|s| s.contrastive.is_some() && s.text.is_some() && s.mslm.is_none())
    );
    let mean =
        |xs: &[StepMetrics], f: &dyn Fn(&StepMetrics) -> f64| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
    let (first, last) = (
        mean(&m[..3], &|s| s.contrastive.unwrap() + s.text.unwrap()),
        mean(&m[15..], &|s| s.contrastive.unwrap() + s.text.unwrap()),
    );
    assert!(
        last < first * 0.9,
        "relation losses did not fall: {first} -> {last}"
    );

    // Development evaluations: before training, every 3 steps; the result is the best.
    let evaluations: Vec<serde_json::Value> = json_lines(&out.join("dev.jsonl"));
    let steps: Vec<u64> = evaluations.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![0, 3, 6, 9, 12, 15, 18]);
    assert!(evaluations.iter().all(|e| e["accuracy_with_text"].is_number()));
    let best: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("best/score.json")).unwrap()).unwrap();
    let top = evaluations
        .iter()
        .map(|e| e["score"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(best["score"].as_f64().unwrap(), top);
    assert_eq!(
        tensors(&out.join("model.safetensors")),
        tensors(&out.join("best/model.safetensors"))
    );
    tkre::RelationEncoder::load_dir(&out, tkre::EngineRequest::Auto).unwrap();

    // Patience 1: training stops at the first evaluation that does not improve.
    let early = dir.path().join("early");
    let config = PretrainConfig {
        patience: 1,
        learning_rate: 0.5,
        ..config
    };
    match pretrain(&config, &early, &quiet()).unwrap() {
        TrainOutcome::StoppedEarly { step, best_step } => {
            assert!(step < 18 && best_step < step, "{step} {best_step}")
        }
        other => panic!("expected an early stop, got {other:?}"),
    }

    // Development relations must be held out of training, and enough for 5-way episodes.
    let config = PretrainConfig {
        dev: Some(train.clone()),
        ..config
    };
    let error = pretrain(&config, &dir.path().join("leak"), &quiet())
        .unwrap_err()
        .to_string();
    assert!(error.contains("held out of training"), "{error}");
    let few = dir.path().join("few.jsonl");
    pattern_corpus(&few, "f", 3, 3);
    let config = PretrainConfig {
        dev: Some(few),
        ..config
    };
    let error = pretrain(&config, &dir.path().join("few"), &quiet())
        .unwrap_err()
        .to_string();
    assert!(error.contains("need 5"), "{error}");
}

/// The GPU training path without a GPU: both stages on burn's wgpu backend (in CI, Mesa's
/// lavapipe, the software Vulkan device scripts/setup/install.sh installs; another device
/// with `TKRE_GPU_TEST_DEVICE`, e.g. `cuda` in a `--features cuda` build) give the CPU run's
/// losses and gradient norms. Dropout is off (each backend draws its own random numbers);
/// masking, batches and the fresh heads come from the same seeds on both. The two differ
/// only by f32 rounding in other kernels and summation orders, which AdamW's first steps
/// amplify a little: measured within 1e-5 relative over these steps; the bound is 1e-3.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn both_stages_train_on_a_gpu_backend_with_the_cpus_losses() {
    let _rng = lock_rng();
    let device = std::env::var("TKRE_GPU_TEST_DEVICE").unwrap_or_else(|_| "wgpu".into());
    let (dir, init) = tiny_init_without_dropout();

    for stage in [Stage::Mslm, Stage::Scl] {
        let run = |device: &str| {
            let out = dir.path().join(format!("{stage:?}-{device}"));
            let config = PretrainConfig {
                max_steps: Some(4),
                device: device.into(),
                ..tiny_config(&init, stage)
            };
            pretrain(&config, &out, &quiet()).unwrap_or_else(|e| panic!("{stage:?} on {device}: {e:#}"));
            metrics(&out)
        };
        let (cpu, gpu) = (run("cpu"), run(&device));
        assert_eq!(cpu.len(), 4);
        assert_eq!(gpu.len(), 4);
        let mut worst = 0.0f64;
        for (a, b) in cpu.iter().zip(&gpu) {
            assert_eq!(
                (a.masked_tokens, a.scl_samples, a.tokens),
                (b.masked_tokens, b.scl_samples, b.tokens)
            );
            let pairs = [
                (Some(a.loss), Some(b.loss)),
                (a.mslm, b.mslm),
                (a.scl, b.scl),
                (Some(a.grad_norm), Some(b.grad_norm)),
            ];
            for (x, y) in pairs {
                assert_eq!(
                    x.is_some(),
                    y.is_some(),
                    "{stage:?} step {}: a loss on one device only",
                    a.step
                );
                if let (Some(x), Some(y)) = (x, y) {
                    assert!(x.is_finite() && y.is_finite());
                    worst = worst.max((x - y).abs() / x.abs().max(1.0));
                }
            }
        }
        eprintln!("{stage:?}: largest relative difference between cpu and {device} {worst:e}");
        assert!(
            worst < 1e-3,
            "{stage:?}: cpu and {device} losses differ by {worst:e} (relative)"
        );
    }
}
