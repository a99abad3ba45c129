//! `fermyon:spin/llm@2.0.0`: always linked. Without `[llm_compute]` every
//! call fails with Spin's own `runtime-error` text; a model the component's
//! `ai_models` does not name is `invalid-input`, as in Spin.

use super::bindings::fermyon::spin::llm;
use crate::services::llm::{InferOptions, LlmError};
use crate::wasm::state::GuestState;

impl From<LlmError> for llm::Error {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::InvalidInput(why) => llm::Error::InvalidInput(why),
            LlmError::Runtime(why) => llm::Error::RuntimeError(why),
        }
    }
}

impl llm::Host for GuestState {
    async fn infer(
        &mut self,
        model: String,
        prompt: String,
        params: Option<llm::InferencingParams>,
    ) -> Result<llm::InferencingResult, llm::Error> {
        let options = params.map_or_else(InferOptions::default, |p| InferOptions {
            max_tokens: p.max_tokens,
            repeat_penalty: p.repeat_penalty,
            repeat_penalty_last_n_token_count: p.repeat_penalty_last_n_token_count,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        });
        let answer = self.llm().clone().infer(&model, prompt, options).await?;
        Ok(llm::InferencingResult {
            text: answer.text,
            usage: llm::InferencingUsage {
                prompt_token_count: answer.usage.prompt_token_count,
                generated_token_count: answer.usage.generated_token_count,
            },
        })
    }

    async fn generate_embeddings(
        &mut self,
        model: String,
        text: Vec<String>,
    ) -> Result<llm::EmbeddingsResult, llm::Error> {
        let answer = self.llm().clone().embed(&model, text).await?;
        Ok(llm::EmbeddingsResult {
            embeddings: answer.embeddings,
            usage: llm::EmbeddingsUsage {
                prompt_token_count: answer.usage.prompt_token_count,
            },
        })
    }
}
