//! A client for the OpenAI chat-completions API, which llama.cpp's server, vLLM, Ollama and
//! hosted APIs all speak: retries with exponential back-off (honouring `Retry-After`), a
//! timeout per request, and structured output that adapts to the server: OpenAI's
//! `{"type": "json_schema", ...}` first, then llama-cpp-python's `{"type": "json_object",
//! "schema": ...}` dialect, then free text, each step taken once when the server refuses the
//! previous one.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

/// What to do about structured output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Structured {
    /// Ask for it; if the server rejects `response_format`, go on without it.
    Auto,
    On,
    Off,
}

#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL (`http://host:port/v1`) or the full `.../chat/completions` URL.
    pub endpoint: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub temperature: f64,
    pub max_tokens: u32,
    pub structured: Structured,
}

/// Everything but the API key, which must never reach a log.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("structured", &self.structured)
            .finish()
    }
}

/// Whether an `http://` endpoint leaves this machine (its text would travel unencrypted).
pub fn is_remote_plain_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => host,
        None => authority,
    };
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or_default().trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    !(host == "localhost" || host.ends_with(".localhost") || host == "::1" || host.starts_with("127."))
}

pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    config: ClientConfig,
    /// Which structured-output dialect is in use: one of the `DIALECT_*` values.
    dialect: AtomicU8,
}

const DIALECT_JSON_SCHEMA: u8 = 0;
const DIALECT_JSON_OBJECT: u8 = 1;
const DIALECT_NONE: u8 = 2;

/// `format` (OpenAI's json_schema form) in the dialect `dialect`.
fn in_dialect(format: &Value, dialect: u8) -> Option<Value> {
    match dialect {
        DIALECT_JSON_SCHEMA => Some(format.clone()),
        DIALECT_JSON_OBJECT => Some(json!({
            "type": "json_object",
            "schema": format.pointer("/json_schema/schema").cloned().unwrap_or(Value::Null),
        })),
        _ => None,
    }
}

/// The longest a server's `Retry-After` is waited for (and never longer than one request may
/// take, `--timeout`); a larger one (a misconfigured or hostile server) would hang the run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One answer and the tokens it cost.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub content: String,
    pub completion_tokens: u64,
    pub structured: bool,
}

/// A failed attempt: whether trying again may help.
enum Attempt {
    Retry(String, Option<Duration>),
    Fatal(String),
    FormatRejected(String),
}

impl ChatClient {
    pub fn new(config: ClientConfig) -> Result<Self> {
        let endpoint = config.endpoint.trim_end_matches('/');
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(anyhow!(
                "--endpoint must be an http(s) URL such as http://127.0.0.1:8080/v1, not {endpoint:?}"
            ));
        }
        if is_remote_plain_http(endpoint) {
            log::warn!(
                "{endpoint} is plain http:// to another machine: prompts (and an API key) travel \
                 unencrypted; use https:// unless the network is yours"
            );
        }
        let url = if endpoint.ends_with("/chat/completions") {
            endpoint.to_string()
        } else {
            format!("{endpoint}/chat/completions")
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| anyhow!("cannot create the HTTP client: {e}"))?;
        Ok(Self {
            http,
            url,
            dialect: AtomicU8::new(if config.structured == Structured::Off {
                DIALECT_NONE
            } else {
                DIALECT_JSON_SCHEMA
            }),
            config,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether structured output is (still) being asked for.
    pub fn structured(&self) -> bool {
        self.dialect.load(Ordering::Relaxed) != DIALECT_NONE
    }

    /// Sends one user message; `format` is the `response_format` to ask for when structured
    /// output is on.
    pub async fn chat(&self, prompt: &str, format: Option<&Value>) -> Result<ChatAnswer> {
        let mut attempt = 0;
        loop {
            let dialect = self.dialect.load(Ordering::Relaxed);
            let response_format = format.and_then(|f| in_dialect(f, dialect));
            let structured = response_format.is_some();
            let mut body = json!({
                "model": self.config.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.config.temperature,
                "max_tokens": self.config.max_tokens,
            });
            if let Some(response_format) = response_format {
                body["response_format"] = response_format;
            }
            match self.attempt(&body).await {
                Ok((content, completion_tokens)) => {
                    return Ok(ChatAnswer {
                        content,
                        completion_tokens,
                        structured,
                    });
                }
                Err(Attempt::FormatRejected(message))
                    if self.config.structured == Structured::Auto || dialect == DIALECT_JSON_SCHEMA =>
                {
                    // Next dialect; concurrent requests may race here, and only move it forward.
                    let next = (dialect + 1).min(DIALECT_NONE);
                    if next == DIALECT_NONE && self.config.structured == Structured::On {
                        return Err(anyhow!(
                            "{message}\n(the server supports no structured output; use --structured auto or off)"
                        ));
                    }
                    self.dialect.fetch_max(next, Ordering::Relaxed);
                    log::warn!("the server refused this response_format ({message}); trying the next form");
                }
                Err(Attempt::FormatRejected(message)) | Err(Attempt::Fatal(message)) => {
                    return Err(anyhow!(message));
                }
                Err(Attempt::Retry(message, wait)) => {
                    if attempt >= self.config.retries {
                        return Err(anyhow!("{message} (gave up after {} attempts)", attempt + 1));
                    }
                    // 0.5 s, 1 s, 2 s, ... capped at 30 s, with jitter so that concurrent
                    // requests do not retry in lockstep; a server's Retry-After wins.
                    let backoff = Duration::from_millis((500u64 << attempt.min(6)).min(30_000));
                    let jitter = Duration::from_millis(rand::random::<u64>() % 250);
                    let cap = MAX_RETRY_AFTER.min(self.config.timeout);
                    let wait = wait.map_or(backoff + jitter, |w| w.min(cap));
                    log::info!("{message}; retrying in {:.1} s", wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, body: &Value) -> Result<(String, u64), Attempt> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(Attempt::Retry(
                    format!("request timed out after {:?}", self.config.timeout),
                    None,
                ));
            }
            Err(e) => return Err(Attempt::Retry(format!("cannot reach {}: {e}", self.url), None)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return Err(Attempt::Retry(format!("reading the response failed: {e}"), None)),
        };
        if !status.is_success() {
            let excerpt: String = text.chars().take(300).collect();
            let message = format!("{} answered HTTP {status}: {excerpt}", self.url);
            return Err(match status.as_u16() {
                // A refused response_format (some servers answer 500 to one they do not know).
                400 | 422 | 500 if body.get("response_format").is_some() && mentions_format(&text) => {
                    Attempt::FormatRejected(message)
                }
                408 | 409 | 425 | 429 | 500..=599 => Attempt::Retry(message, retry_after),
                401 | 403 => Attempt::Fatal(format!(
                    "{message}\n(authentication failed: set the API key in the environment variable named by --api-key-env)"
                )),
                _ => Attempt::Fatal(message),
            });
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Attempt::Retry(format!("the server's answer is not JSON ({e})"), None))?;
        let content = value
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Attempt::Fatal(format!(
                    "the server's answer has no choices[0].message.content: {value}"
                ))
            })?;
        let tokens = value
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok((content.to_string(), tokens))
    }
}

fn mentions_format(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["response_format", "json_schema", "grammar", "structured"]
        .iter()
        .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_reaches_debug_output_and_remote_http_is_noticed() {
        let config = ClientConfig {
            endpoint: "http://127.0.0.1:8080/v1".into(),
            model: "m".into(),
            api_key: Some("sk-secret-123".into()),
            timeout: Duration::from_secs(1),
            retries: 0,
            temperature: 0.0,
            max_tokens: 1,
            structured: Structured::Off,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("sk-secret-123") && shown.contains("redacted"),
            "{shown}"
        );
        for local in [
            "http://127.0.0.1:8080/v1",
            "http://localhost/v1",
            "http://[::1]:9/v1",
            "https://api.example.com/v1",
        ] {
            assert!(!is_remote_plain_http(local), "{local}");
        }
        for remote in [
            "http://10.0.0.5:8080/v1",
            "http://llm.example.com/v1",
            "http://user@evil.com/v1",
        ] {
            assert!(is_remote_plain_http(remote), "{remote}");
        }
    }
}
