//! `tkre synthesize` against a real LLM server that the test starts: llama-cpp-python's
//! OpenAI-compatible server with SmolLM2-135M-Instruct (scripts/setup/llm.sh installs both
//! into $TKRE_CACHE; scripts/test.sh runs it). The model is weak: this checks the plumbing
//! (requests, structured output, parsing, offset recomputation, rejection, resume), not the
//! quality of what it writes.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cache() -> PathBuf {
    std::env::var_os("TKRE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tkre"))
}

fn start_server() -> (Server, String) {
    let python = cache().join("llm-venv/bin/python");
    let model = cache().join("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        python.is_file() && model.is_file(),
        "the local LLM server is not installed; run scripts/setup/llm.sh (scripts/test.sh does)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
        ])
        .args(["--model_alias", "smollm2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the LLM server did not start in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (server, format!("http://127.0.0.1:{port}/v1"))
}

fn lines(path: &Path) -> Vec<Value> {
    common::json_lines(path)
}

fn synthesize(kind: &str, endpoint: &str, dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tkre"))
        .args([
            "synthesize",
            kind,
            "--endpoint",
            endpoint,
            "--llm",
            "smollm2",
            "--temperature",
            "0",
        ])
        .args(["--schema", dir.join("schema.json").to_str().unwrap()])
        .args(["--seeds", dir.join("seeds.jsonl").to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--concurrency", "2"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn explanations_and_samples_from_a_local_llm_server() {
    let (_server, endpoint) = start_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = json!({
        "entity_types": ["PERSON", "ORGANIZATION", "CITY"],
        "relations": [
            {"name": "employee of", "head_types": ["PERSON"], "tail_types": ["ORGANIZATION"]},
            {"name": "born in", "head_types": ["PERSON"], "tail_types": ["CITY"]}
        ]
    });
    std::fs::write(dir.path().join("schema.json"), schema.to_string()).unwrap();
    let seeds = [
        json!({"marked": "[E1]Tim Cook[/E1] is the chief executive of [E2]Apple[/E2] .", "relation": "employee of"}),
        json!({"marked": "[E1]Marie Curie[/E1] was born in [E2]Warsaw[/E2] in 1867 .", "relation": "born in"}),
    ];
    let seeds: String = seeds.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(dir.path().join("seeds.jsonl"), seeds).unwrap();

    // EDKG: one prompt per relation.
    let out = dir.path().join("explanations.jsonl");
    let run = synthesize("explain", &endpoint, dir.path(), &out, &["--max-tokens", "120"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let done = lines(&PathBuf::from(format!("{}.done.jsonl", out.display())));
    assert_eq!(done.len(), 2, "{stderr}");
    assert!(
        done.iter().all(|d| d["structured"] == true),
        "llama-cpp-python takes json_object + schema: {done:?}"
    );
    let records = lines(&out);
    let rejected = lines(&PathBuf::from(format!("{}.rejected.jsonl", out.display())));
    assert_eq!(records.len() + rejected.len(), 2);
    for r in &records {
        let text = r["generated_text"].as_str().unwrap();
        assert!(
            text.contains(r["subject"].as_str().unwrap()) && text.contains(r["object"].as_str().unwrap())
        );
    }
    assert!(
        rejected
            .iter()
            .all(|r| r["reason"].as_str().is_some_and(|s| !s.is_empty()))
    );
    let report = std::fs::read_to_string(format!("{}.report.json", out.display())).unwrap();
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["relations"]["born in"]["asked"], 1);

    // SCDG: one prompt per relation, two samples each.
    let out = dir.path().join("samples.jsonl");
    let run = synthesize(
        "samples",
        &endpoint,
        dir.path(),
        &out,
        &["--n", "2", "--max-tokens", "300"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("relation | prompts | asked | valid"),
        "the yield report: {stderr}"
    );
    let done = lines(&PathBuf::from(format!("{}.done.jsonl", out.display())));
    assert_eq!(done.len(), 2);
    for r in lines(&out) {
        // Offsets were recomputed here: they select the entity strings.
        let text: Vec<char> = r["text"].as_str().unwrap().chars().collect();
        let span = |s: &str, e: &str| -> String {
            text[r[s].as_u64().unwrap() as usize..r[e].as_u64().unwrap() as usize]
                .iter()
                .collect()
        };
        assert_eq!(span("subj_start", "subj_end"), r["subj"].as_str().unwrap());
        assert_eq!(span("obj_start", "obj_end"), r["obj"].as_str().unwrap());
        assert!(["employee of", "born in"].contains(&r["relation"].as_str().unwrap()));
    }
    let before = std::fs::read_to_string(&out).unwrap();

    // Resume: everything is done, nothing is sent again, nothing changes.
    let run = synthesize("samples", &endpoint, dir.path(), &out, &["--n", "2", "--resume"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("2 prompts done, 0 to send"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);
}
