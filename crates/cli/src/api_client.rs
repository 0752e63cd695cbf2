//! The operator CLIs' client of a running `qianbao serve` (`qianbao recon`, `qianbao ops`):
//! a bearer key, a fresh idempotency key per command, and the API's errors as errors.

use anyhow::Context;
use serde_json::Value;

pub(crate) struct Client {
    base: String,
    key: String,
}

impl Client {
    pub(crate) fn new(url: &str, key: String) -> Client {
        Client { base: url.trim_end_matches('/').to_owned(), key }
    }

    /// Calls the API; a non-2xx answer is an error with its status, code and message.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("an HTTP client")?;
        let mut request =
            http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(body) = body {
            // A fresh key per invocation: a retry of this command is a new request, and the
            // API's own idempotency (same file, same break state) keeps it harmless.
            request = request
                .header("Idempotency-Key", idempotency_key())
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let error = &value["error"];
            anyhow::bail!(
                "{method} {path}: {} {}: {}",
                status.as_u16(),
                error["code"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }
}

fn idempotency_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("cli-{}-{nanos}", std::process::id())
}
