//! Knowledge synthesis: answer parsing and validation on the paper's real LLM outputs and on
//! malformed answers, and `tkre synthesize` end to end against a scripted OpenAI-compatible
//! server (retries, structured-output fallback, kill and resume).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tkre_trainer::synthesis::answers::{check_explanation, check_sample, parse_samples};
use tkre_trainer::synthesis::prompts::demonstration;
use tkre_trainer::synthesis::schema::{RelationSchema, SchemaRelation};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn relation(name: &str, head: &[&str], tail: &[&str]) -> SchemaRelation {
    SchemaRelation {
        name: name.into(),
        id: None,
        description: None,
        head_types: head.iter().map(|s| s.to_string()).collect(),
        tail_types: tail.iter().map(|s| s.to_string()).collect(),
        types_are_hints: false,
    }
}

#[test]
fn released_samples_in_the_papers_line_format_parse_to_their_offsets() {
    let text = std::fs::read_to_string(fixture("tkre_released_samples.jsonl")).unwrap();
    let released: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for record in &released {
        let s = |k: &str| record[k].as_str().unwrap().to_string();
        // The answer as the LLM wrote it (the paper's parser read this format).
        let answer = format!(
            "Sure! Here are more samples:\n1. {}",
            demonstration(
                &s("relation"),
                &s("text"),
                &s("subj"),
                &s("subj_type"),
                &s("obj"),
                &s("obj_type")
            )
        );
        let samples = parse_samples(&answer);
        assert_eq!(samples.len(), 1, "{answer}");
        let schema_relation = relation(&s("relation"), &[&s("subj_type")], &[&s("obj_type")]);
        // One released sample pairs "company" with "the top management": no name, rejected.
        let named = |t: &str| t.chars().any(|c| c.is_uppercase() || c.is_ascii_digit());
        if !named(&s("subj")) && !named(&s("obj")) {
            assert_eq!(
                check_sample(&samples[0], &schema_relation, "p"),
                Err("neither entity is a name")
            );
            continue;
        }
        let checked = check_sample(&samples[0], &schema_relation, "p").unwrap();
        assert_eq!(checked.text, s("text"));
        assert_eq!(
            (checked.subj_start, checked.subj_end),
            (
                record["subj_start"].as_u64().unwrap() as usize,
                record["subj_end"].as_u64().unwrap() as usize
            )
        );
        assert_eq!(
            (checked.obj_start, checked.obj_end),
            (
                record["obj_start"].as_u64().unwrap() as usize,
                record["obj_end"].as_u64().unwrap() as usize
            )
        );
        assert!(!checked.repaired);
    }
}

#[test]
fn released_explanations_validate() {
    let explanations: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("tkre_released_explanations.json")).unwrap())
            .unwrap();
    for e in &explanations {
        let s = |k: &str| e[k].as_str().unwrap();
        let record = check_explanation(
            s("generated_text"),
            s("relation"),
            s("subject"),
            s("object"),
            "seed sentence",
            "p",
        )
        .unwrap();
        assert_eq!(record.generated_text, s("generated_text").trim());
        // The same answer as structured output.
        let structured = json!({"explanation": s("generated_text")}).to_string();
        assert_eq!(
            check_explanation(&structured, s("relation"), s("subject"), s("object"), "", "p")
                .unwrap()
                .generated_text,
            record.generated_text
        );
    }
}

#[test]
fn malformed_answers_are_read_as_far_as_possible_and_rejected_with_reasons() {
    let employer = relation("per:employee_of", &["PERSON"], &["ORGANIZATION"]);
    let good = r#"{"context": "Ann Lee works for Acme Corp .", "head_entity": "Ann Lee", "head_type": "PERSON", "tail_entity": "Acme Corp", "tail_type": "ORGANIZATION"}"#;

    // Extra prose and a code fence around the JSON.
    let answer = format!("Here you go:\n```json\n{{\"samples\": [{good}]}}\n```\nHope this helps!");
    assert_eq!(parse_samples(&answer).len(), 1);

    // Truncated JSON: the complete objects are kept.
    let truncated = format!("{{\"samples\": [{good}, {{\"context\": \"Bo works at Zeta",);
    let samples = parse_samples(&truncated);
    assert_eq!(samples.len(), 1);
    check_sample(&samples[0], &employer, "p").unwrap();

    // Empty and prose-only answers give nothing.
    assert!(parse_samples("").is_empty());
    assert!(parse_samples("I cannot help with that.").is_empty());

    let sample = |json: &str| parse_samples(json).remove(0);
    let reason = |json: &str| check_sample(&sample(json), &employer, "p").unwrap_err();
    // An entity the sentence does not contain.
    assert_eq!(
        reason(
            r#"{"context": "Ann works for Acme .", "head_entity": "Bob", "head_type": "PERSON", "tail_entity": "Acme", "tail_type": "ORGANIZATION"}"#
        ),
        "head entity not in the context"
    );
    assert_eq!(
        reason(
            r#"{"context": "Ann works for Acme .", "head_entity": "", "head_type": "PERSON", "tail_entity": "Acme", "tail_type": "ORGANIZATION"}"#
        ),
        "missing entity"
    );
    assert_eq!(
        reason(
            r#"{"context": "Ann works for Acme .", "head_entity": "Ann", "head_type": "CITY", "tail_entity": "Acme", "tail_type": "ORGANIZATION"}"#
        ),
        "head type outside the schema"
    );
    assert_eq!(
        reason(
            r#"{"relation": "per:spouse", "context": "Ann works for Acme .", "head_entity": "Ann", "head_type": "PERSON", "tail_entity": "Acme", "tail_type": "ORGANIZATION"}"#
        ),
        "wrong relation"
    );
    // Wrong case or spacing is repaired: the spans select the sentence's own spelling.
    let repaired = check_sample(
        &sample(r#"{"context": "Ann works for ACME  Corp .", "head_entity": "ann", "head_type": "person", "tail_entity": "Acme Corp", "tail_type": "ORGANIZATION"}"#),
        &employer,
        "p",
    )
    .unwrap();
    assert!(repaired.repaired);
    assert_eq!(repaired.subj, "Ann");
    assert_eq!(repaired.obj, "ACME  Corp");
    assert_eq!(repaired.subj_type.as_deref(), Some("PERSON"));
    // An entity written with a qualifier the sentence leaves out: the part before the comma
    // (seen from Qwen2.5-Coder-1.5B: "Los Angeles, California" for "born in Los Angeles").
    let born = relation("place of birth", &[], &[]);
    let qualified = check_sample(
        &sample(r#"{"context": "Jessica Chastain was born in Los Angeles and raised in New York .", "head_entity": "Jessica Chastain", "head_type": "PERSON", "tail_entity": "Los Angeles, California", "tail_type": "CITY"}"#),
        &born,
        "p",
    )
    .unwrap();
    assert!(qualified.repaired);
    assert_eq!(qualified.obj, "Los Angeles");
    // The prompt echoed in the sentence (seen from the same model): a triple line, a long
    // relation name copied word for word, the answer format's labels.
    let echo = |relation: &SchemaRelation, context: &str| {
        let json = format!(
            r#"{{"context": "{context}", "head_entity": "Ann", "head_type": "PERSON", "tail_entity": "Acme", "tail_type": "ORGANIZATION"}}"#
        );
        check_sample(&sample(&json), relation, "p").err()
    };
    let performer = relation("performer", &[], &[]);
    let located = relation("located in the administrative territorial entity", &[], &[]);
    assert_eq!(
        echo(&performer, "Ann sang in Acme in 1990. Ann -- performer -- Acme"),
        Some("the prompt echoed in the context")
    );
    assert_eq!(
        echo(
            &located,
            "Ann is located in the administrative territorial entity of Acme ."
        ),
        Some("the prompt echoed in the context")
    );
    assert_eq!(
        echo(&employer, "Ann works for Acme . Head Entity: Ann"),
        Some("the prompt echoed in the context")
    );
    // A short name in ordinary words is not an echo.
    assert_eq!(
        echo(&performer, "Ann , the lead performer , sang with Acme ."),
        None
    );

    // Explanations that never mention the object, or nothing at all.
    assert_eq!(
        check_explanation("", "r", "Ann", "Acme", "", "p").unwrap_err(),
        "empty answer"
    );
    assert_eq!(
        check_explanation("Ann is employed there.", "r", "Ann", "Acme", "", "p").unwrap_err(),
        "explanation does not mention the object"
    );
}

// ---------------------------------------------------------------------------------------
// A scripted OpenAI-compatible server.

#[derive(Default)]
struct Script {
    /// Answer 503 to this many requests first.
    fail_first: usize,
    /// Answer 400 to any request with response_format (a server without structured output).
    refuse_format: bool,
    delay: Duration,
    /// Answer the failing requests with 429 and this Retry-After (seconds) instead of 503.
    retry_after: Option<u64>,
}

struct MockServer {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Answers a samples prompt with two samples unique to the request (`tag`), one of them with
/// the tail in the wrong case, plus one whose head is not in its sentence.
fn answer_for(prompt: &str, structured: bool, tag: usize) -> String {
    let relation = prompt
        .split("relation '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or("?");
    let samples = json!([
        {"context": format!("Ann{tag} works for Acme {relation} ."), "head_entity": format!("Ann{tag}"), "head_type": "PERSON", "tail_entity": format!("acme {relation}"), "tail_type": "ORGANIZATION"},
        {"context": format!("Bo{tag} joined Zeta {relation} in 2001 ."), "head_entity": format!("Bo{tag}"), "head_type": "PERSON", "tail_entity": format!("Zeta {relation}"), "tail_type": "ORGANIZATION"},
        {"context": "Nobody is here .", "head_entity": "Cy", "head_type": "PERSON", "tail_entity": "Zeta", "tail_type": "ORGANIZATION"}
    ]);
    if structured {
        json!({"samples": samples}).to_string()
    } else {
        // Free text in the paper's line format.
        samples
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                demonstration(
                    relation,
                    s["context"].as_str().unwrap(),
                    s["head_entity"].as_str().unwrap(),
                    "PERSON",
                    s["tail_entity"].as_str().unwrap(),
                    "ORGANIZATION",
                )
            })
            .collect()
    }
}

fn start_server(script: Script) -> MockServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let script = Arc::new(script);
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, script, count) = (seen.clone(), script.clone(), count.clone());
            std::thread::spawn(move || {
                let Some(body) = read_request(&mut stream) else {
                    return;
                };
                seen.lock().unwrap().push(body.clone());
                std::thread::sleep(script.delay);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let structured = body.get("response_format").is_some();
                let mut extra = String::new();
                let (status, reply) = if n < script.fail_first {
                    match script.retry_after {
                        Some(seconds) => {
                            extra = format!("retry-after: {seconds}\r\n");
                            ("429 Too Many Requests", json!({"error": "slow down"}))
                        }
                        None => ("503 Service Unavailable", json!({"error": "overloaded"})),
                    }
                } else if structured && script.refuse_format {
                    (
                        // As llama-cpp-python answers a response_format type it does not know.
                        "500 Internal Server Error",
                        json!({"error": {"message": "response_format.type: input should be 'text'"}}),
                    )
                } else {
                    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
                    let content = answer_for(prompt, structured, n);
                    (
                        "200 OK",
                        json!({"choices": [{"message": {"role": "assistant", "content": content}}], "usage": {"completion_tokens": 40}}),
                    )
                };
                let reply = reply.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    MockServer { url, requests }
}

/// A schema of `n` relations and seed examples for each, in a temporary directory.
fn inputs(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let schema = RelationSchema {
        entity_types: vec!["PERSON".into(), "ORGANIZATION".into()],
        relations: (0..n)
            .map(|i| relation(&format!("rel{i}"), &["PERSON"], &["ORGANIZATION"]))
            .collect(),
    };
    let schema_path = dir.join("schema.json");
    std::fs::write(&schema_path, serde_json::to_string(&schema).unwrap()).unwrap();
    let seeds: String = (0..n)
        .map(|i| format!("{}\n", json!({"marked": format!("[E1]Ann[/E1] works for [E2]Acme{i}[/E2] .") , "relation": format!("rel{i}")})))
        .collect();
    let seeds_path = dir.join("seeds.jsonl");
    std::fs::write(&seeds_path, seeds).unwrap();
    (schema_path, seeds_path)
}

fn tkre_samples(server: &MockServer, schema: &Path, seeds: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tkre"));
    command
        .args([
            "synthesize",
            "samples",
            "--endpoint",
            &server.url,
            "--llm",
            "mock",
            "--retries",
            "4",
        ])
        .args([
            "--schema",
            schema.to_str().unwrap(),
            "--seeds",
            seeds.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap(), "--n", "3", "--quiet"])
        .args(extra)
        .env("OPENAI_API_KEY", "secret-from-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn lines(path: &Path) -> Vec<Value> {
    common::json_lines(path)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Runs `command` and checks that it succeeded, showing its stderr if not.
fn succeeds(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn samples_end_to_end_with_retries_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, seeds) = inputs(dir.path(), 3);
    let server = start_server(Script {
        fail_first: 2,
        ..Default::default()
    });
    let out = dir.path().join("samples.jsonl");
    succeeds(&mut tkre_samples(
        &server,
        &schema,
        &seeds,
        &out,
        &["--rounds", "2"],
    ));

    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 6 + 2, "6 prompts plus 2 retried 503s");
    assert!(
        requests
            .iter()
            .all(|r| r["response_format"]["type"] == "json_schema")
    );
    let prompt = requests[0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Relation: rel") && prompt.contains("Generate 3 more samples"),
        "{prompt}"
    );

    let records = lines(&out);
    assert_eq!(records.len(), 12, "two valid samples per prompt");
    for r in &records {
        let text = r["text"].as_str().unwrap();
        let span = |s: &str, e: &str| -> String {
            text.chars()
                .skip(r[s].as_u64().unwrap() as usize)
                .take((r[e].as_u64().unwrap() - r[s].as_u64().unwrap()) as usize)
                .collect()
        };
        assert_eq!(span("subj_start", "subj_end"), r["subj"].as_str().unwrap());
        assert_eq!(span("obj_start", "obj_end"), r["obj"].as_str().unwrap());
        assert_eq!(r["subj_type"], "PERSON");
    }
    // The wrong-case tails were repaired, the entity-less samples rejected and logged.
    assert_eq!(records.iter().filter(|r| r["repaired"] == true).count(), 6);
    let rejected = lines(&with_suffix(&out, ".rejected.jsonl"));
    assert_eq!(rejected.len(), 6);
    assert!(
        rejected
            .iter()
            .all(|r| r["reason"] == "head entity not in the context")
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(with_suffix(&out, ".report.json")).unwrap()).unwrap();
    assert_eq!(report["relations"]["rel0"]["asked"], 6);
    assert_eq!(report["relations"]["rel0"]["valid"], 4);
    assert_eq!(
        report["relations"]["rel0"]["rejected"]["head entity not in the context"],
        2
    );

    // The records are a pre-training corpus as they are.
    let mut report = tkre_trainer::pretrain::corpus::CorpusReport::default();
    let corpus = tkre_trainer::pretrain::corpus::load_files(&[&out], &mut report).unwrap();
    assert_eq!(corpus.len(), 12);
    assert_eq!(report.skipped_total(), 0);

    // Without --resume an existing output is never overwritten.
    let again = tkre_samples(&server, &schema, &seeds, &out, &[])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

#[test]
fn a_server_without_structured_output_gets_free_text_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, seeds) = inputs(dir.path(), 2);
    let server = start_server(Script {
        refuse_format: true,
        ..Default::default()
    });
    let out = dir.path().join("samples.jsonl");
    succeeds(&mut tkre_samples(
        &server,
        &schema,
        &seeds,
        &out,
        &["--concurrency", "1"],
    ));
    let requests = server.requests.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        4,
        "json_schema and json_object refused, then free text only"
    );
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert_eq!(requests[1]["response_format"]["type"], "json_object");
    assert_eq!(
        requests[1]["response_format"]["schema"]["required"],
        json!(["samples"])
    );
    assert!(requests[2..].iter().all(|r| r.get("response_format").is_none()));
    assert_eq!(lines(&out).len(), 4);
    let done = lines(&with_suffix(&out, ".done.jsonl"));
    assert!(done.iter().all(|d| d["structured"] == false));
}

#[test]
fn killed_and_resumed_runs_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, seeds) = inputs(dir.path(), 10);
    let server = start_server(Script {
        delay: Duration::from_millis(300),
        ..Default::default()
    });
    let out = dir.path().join("samples.jsonl");
    let mut child = tkre_samples(&server, &schema, &seeds, &out, &["--concurrency", "2"])
        .spawn()
        .unwrap();
    let done_path = with_suffix(&out, ".done.jsonl");
    let started = Instant::now();
    while lines(&done_path).len() < 3 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = lines(&done_path).len();
    assert!(
        (3..10).contains(&done_before),
        "killed after {done_before} prompts"
    );

    succeeds(&mut tkre_samples(&server, &schema, &seeds, &out, &["--resume"]));
    let done = lines(&done_path);
    let ids: HashSet<&str> = done.iter().map(|d| d["prompt_id"].as_str().unwrap()).collect();
    assert_eq!(
        (done.len(), ids.len()),
        (10, 10),
        "every prompt answered exactly once"
    );
    let records = lines(&out);
    let mut per_prompt: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &records {
        *per_prompt.entry(r["prompt_id"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(per_prompt.len(), 10);
    assert!(per_prompt.values().all(|&n| n == 2), "{per_prompt:?}");
    let texts: HashSet<&str> = records.iter().map(|r| r["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), records.len(), "no duplicate record");
    // Only the prompts not done were sent again.
    let sent = server.requests.lock().unwrap().len();
    assert!(
        sent <= 10 + 2,
        "{sent} requests for 10 prompts (at most the 2 in flight resent)"
    );
}

#[test]
fn samples_without_a_name_naming_the_relation_or_reversed_are_rejected() {
    let director = relation("director", &["WORK"], &["PERSON"]);
    let sample = |text: &str, head: &str, head_type: &str, tail: &str, tail_type: &str| {
        tkre_trainer::synthesis::answers::RawSample {
            relation: None,
            text: text.into(),
            head: head.into(),
            head_type: Some(head_type.into()),
            tail: tail.into(),
            tail_type: Some(tail_type.into()),
        }
    };
    let check = |raw| check_sample(&raw, &director, "p").map(|r| (r.subj, r.obj));
    assert_eq!(
        check(sample(
            "Jaws was directed by Steven Spielberg.",
            "Jaws",
            "WORK",
            "Steven Spielberg",
            "PERSON"
        )),
        Ok(("Jaws".into(), "Steven Spielberg".into()))
    );
    assert_eq!(
        check(sample(
            "Steven Spielberg directed Jaws in 1975.",
            "Steven Spielberg",
            "PERSON",
            "Jaws",
            "WORK"
        )),
        Err("head and tail reversed (their types are the relation's tail and head types)")
    );
    assert_eq!(
        check(sample(
            "The studio hired a director for the film.",
            "film",
            "WORK",
            "director",
            "PERSON"
        )),
        Err("neither entity is a name")
    );
    assert_eq!(
        check(sample(
            "Jaws names its directors in the credits.",
            "Jaws",
            "WORK",
            "directors",
            "PERSON"
        )),
        Err("an entity is the relation's name")
    );
    assert_eq!(
        check(sample(
            "The Council follows adherence to international rules, respect for human rights, and a commitment to promoting peace and unity.",
            "Council",
            "WORK",
            "adherence to international rules, respect for human rights, and a commitment to promoting peace and unity",
            "PERSON"
        )),
        Err("an entity is a phrase, not a name")
    );
    // Types an LLM guessed for the relation are hints: other types pass, a reversal does not.
    let hinted = SchemaRelation {
        types_are_hints: true,
        ..director.clone()
    };
    let record = check_sample(
        &sample(
            "Jaws was directed by Steven Spielberg.",
            "Jaws",
            "FILM",
            "Steven Spielberg",
            "HUMAN",
        ),
        &hinted,
        "p",
    )
    .unwrap();
    assert_eq!(record.subj_type.as_deref(), Some("FILM"));
    assert!(
        check_sample(
            &sample(
                "Steven Spielberg directed Jaws.",
                "Steven Spielberg",
                "PERSON",
                "Jaws",
                "WORK"
            ),
            &hinted,
            "p"
        )
        .is_err()
    );
    // The longer entity is placed first, so a short one inside it is found elsewhere.
    let bank = relation("central bank", &[], &[]);
    let record = check_sample(
        &sample(
            "The People's Bank of China is the central bank of China.",
            "China",
            "LOCATION",
            "People's Bank of China",
            "ORGANIZATION",
        ),
        &bank,
        "p",
    )
    .unwrap();
    assert_eq!((record.subj_start, record.obj_start), (50, 4));
}

/// Characters whose lower case has another byte length ("İ" is 2 bytes, "i̇" 3) must not
/// shift the labels' offsets onto the original line (a slice off a char boundary panics).
#[test]
fn answers_with_case_changing_lengths_parse_without_panicking() {
    for answer in [
        "Relation: r. Context: İİİ İstanbul is in Türkiye. Head Entity: İstanbul. Head Type: LOC. Tail Entity: Türkiye. Tail Type: LOC.",
        "İİİİ CONTEXT: İ x y. HEAD ENTITY: x. TAIL ENTITY: y.",
        "ẞ Context: Straẞe is in Köln. Head Entity: Straẞe. Tail Entity: Köln.",
        // Found by tests/properties.rs: "İ" grows and "ẞ" shrinks when lower-cased, so the
        // line's length is unchanged while its offsets move.
        "Context: ẞRelation: r. T eslcj Relation: r. İHead Entity:  -- Tail Entity: ]}Tail Entity: 𐖻x\"}",
    ] {
        let samples = parse_samples(answer);
        let relation = relation("r", &[], &[]);
        for sample in &samples {
            let _ = check_sample(sample, &relation, "p");
        }
    }
    let samples = parse_samples(
        "Relation: r. Context: İstanbul is in Türkiye. Head Entity: İstanbul. Head Type: LOC. Tail Entity: Türkiye. Tail Type: LOC.",
    );
    assert_eq!(samples[0].head, "İstanbul");
    assert_eq!(samples[0].tail, "Türkiye");
}

/// Entity repair is linear in the sentence: a 2,500-character context takes milliseconds.
#[test]
fn entity_repair_on_long_contexts_is_fast() {
    let filler = "word ".repeat(500);
    let text = format!("{filler}The  Quick   Brown Fox met Anna.");
    let started = Instant::now();
    for _ in 0..10 {
        let found = tkre_trainer::synthesis::answers::find_entity(&text, "the quick brown fox", None);
        assert!(found.is_some_and(|(_, repaired)| repaired));
        assert!(tkre_trainer::synthesis::answers::find_entity(&text, "not here at all", None).is_none());
        let long = "a long entity name that is nowhere in the sentence ".repeat(6);
        assert!(tkre_trainer::synthesis::answers::find_entity(&text, &long, None).is_none());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A server's Retry-After is honoured only up to a bound: "wait 31 years" must not hang the run
/// (nor, with --retries 1, make it wait at all beyond the one retry).
#[test]
fn an_absurd_retry_after_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let (schema, seeds) = inputs(dir.path(), 1);
    let server = start_server(Script {
        fail_first: 1,
        retry_after: Some(999_999_999),
        ..Default::default()
    });
    let out = dir.path().join("samples.jsonl");
    let started = Instant::now();
    let mut command = tkre_samples(&server, &schema, &seeds, &out, &["--timeout", "5"]);
    let child = command.spawn().unwrap();
    let output = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    // Capped at the request timeout the helper sets.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lines(&out).len(), 2);
}
