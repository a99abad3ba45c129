//! Spin's LLM capability: which models a component may use (`ai_models`)
//! and who serves them. Without `[llm_compute]` every call fails with the
//! error Spin gives without a local model; with `type = "remote_http"`
//! calls are forwarded over Spin's remote protocol:
//!
//! - `POST <origin>/infer` with `{"model", "prompt", "options": {"maxTokens",
//!   "repeatPenalty", "repeatPenaltyLastNTokenCount", "temperature", "topK",
//!   "topP"}}` → `{"text", "usage": {"promptTokenCount",
//!   "generatedTokenCount"}}`;
//! - `POST <origin>/embed` with `{"model", "input": [..]}` →
//!   `{"embeddings": [[..]], "usage": {"promptTokenCount"}}`;
//!
//! both with `Authorization: bearer <auth_token>`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `[llm_compute]` with `type = "remote_http"`: inference forwarded over
/// Spin's remote protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The server's base URL (`<url>/infer`, `<url>/embed`).
    pub url: String,
    /// Sent as `Authorization: bearer <token>`.
    pub auth_token: String,
}

/// What Spin answers, word for word, when no LLM is configured (Spin's
/// runtime tests check this text).
pub const NO_LOCAL_LLM: &str = "Local LLM operations are not supported in this version of Spin.";

/// The most of a remote answer read (Spin bounds host-buffered results
/// the same way).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Inference options, with Spin's defaults when the guest gives none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferOptions {
    /// `max-tokens`.
    pub max_tokens: u32,
    /// `repeat-penalty`.
    pub repeat_penalty: f32,
    /// `repeat-penalty-last-n-token-count`.
    pub repeat_penalty_last_n_token_count: u32,
    /// `temperature`.
    pub temperature: f32,
    /// `top-k`.
    pub top_k: u32,
    /// `top-p`.
    pub top_p: f32,
}

impl Default for InferOptions {
    /// Spin's defaults (`factor-llm`).
    fn default() -> Self {
        Self {
            max_tokens: 100,
            repeat_penalty: 1.1,
            repeat_penalty_last_n_token_count: 64,
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
        }
    }
}

/// An inference answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Inference {
    /// The generated text.
    pub text: String,
    /// Token counts.
    pub usage: InferUsage,
}

/// `usage` of an inference.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferUsage {
    /// Tokens in the prompt.
    pub prompt_token_count: u32,
    /// Tokens generated.
    pub generated_token_count: u32,
}

/// An embeddings answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Embeddings {
    /// One vector per input text.
    pub embeddings: Vec<Vec<f32>>,
    /// Token counts.
    pub usage: EmbedUsage,
}

/// `usage` of an embeddings request.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedUsage {
    /// Tokens in the input.
    pub prompt_token_count: u32,
}

/// Why an LLM call failed, in Spin's terms.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LlmError {
    /// `invalid-input`: the component may not use the model, say.
    #[error("{0}")]
    InvalidInput(String),
    /// `runtime-error`: no backend, or the backend failed.
    #[error("{0}")]
    Runtime(String),
}

/// The models one component may use and the backend behind them.
#[derive(Clone, Debug, Default)]
pub struct LlmAccess {
    /// The component's `ai_models`.
    pub models: Arc<Vec<String>>,
    /// `None`: no `[llm_compute]`.
    pub remote: Option<Arc<RemoteLlm>>,
}

/// A `remote_http` backend.
#[derive(Debug)]
pub struct RemoteLlm {
    origin: String,
    token: String,
    client: reqwest::Client,
}

impl RemoteLlm {
    /// A client for `config`'s server.
    pub fn new(config: &LlmConfig) -> Self {
        // The path of `url` is ignored, as Spin does (`join("/infer")`).
        let origin = match config.url.parse::<http::Uri>() {
            Ok(uri) => match (uri.scheme_str(), uri.authority()) {
                (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
                _ => config.url.clone(),
            },
            Err(_) => config.url.clone(),
        };
        Self {
            origin,
            token: config.auth_token.clone(),
            client: reqwest::Client::new(),
        }
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, LlmError> {
        let response = self
            .client
            .post(format!("{}{path}", self.origin))
            .header("authorization", format!("bearer {}", self.token))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| LlmError::Runtime(format!("POST {path} request error: {e}")))?;
        let status = response.status();
        let bytes = read_bounded(response)
            .await
            .map_err(|e| LlmError::Runtime(format!("POST {path}: {e}")))?;
        if !status.is_success() {
            return Err(LlmError::Runtime(format!(
                "POST {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            LlmError::Runtime(format!(
                "Failed to deserialize response for \"POST {path}\": {e}"
            ))
        })
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl LlmAccess {
    fn check(&self, model: &str) -> Result<&RemoteLlm, LlmError> {
        if !self.models.iter().any(|m| m == model) {
            return Err(LlmError::InvalidInput(format!(
                "The component does not have access to use '{model}'. To give the component \
                 access, add '{model}' to the 'ai_models' key for the component in your \
                 spin.toml manifest"
            )));
        }
        self.remote
            .as_deref()
            .ok_or_else(|| LlmError::Runtime(NO_LOCAL_LLM.into()))
    }

    /// Runs `prompt` through `model`.
    pub async fn infer(
        &self,
        model: &str,
        prompt: String,
        options: InferOptions,
    ) -> Result<Inference, LlmError> {
        let remote = self.check(model)?;
        remote
            .post(
                "/infer",
                serde_json::json!({ "model": model, "prompt": prompt, "options": options }),
            )
            .await
    }

    /// Embeds each of `input` with `model`.
    pub async fn embed(&self, model: &str, input: Vec<String>) -> Result<Embeddings, LlmError> {
        let remote = self.check(model)?;
        remote
            .post(
                "/embed",
                serde_json::json!({ "model": model, "input": input }),
            )
            .await
    }
}
