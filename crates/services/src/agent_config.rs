//! The `agent` configuration section: which LLM answers chats, and how.

use serde::{Deserialize, Serialize};

/// `agent:` in `config/config.yaml`. The API key is never read from files: it comes from the
/// environment (`SQLMATIC_AGENT__API_KEY`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// `openai` (any OpenAI-compatible server) or `anthropic`; empty: chat is not configured.
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub temperature: f32,
    pub max_tokens: u32,
    /// Tool-calling rounds per turn at most.
    pub max_steps: u32,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            provider: None,
            base_url: None,
            model: None,
            api_key: None,
            temperature: 0.0,
            max_tokens: 2048,
            max_steps: 10,
        }
    }
}

impl AgentConfig {
    pub fn is_configured(&self) -> bool {
        self.provider.as_deref().is_some_and(|p| !p.is_empty())
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self
            .provider
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "openai" && *p != "anthropic")
        {
            return Err(format!("agent.provider `{p}` is unknown; use `openai` or `anthropic`"));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err("agent.temperature must be between 0 and 2".into());
        }
        if self.max_steps == 0 {
            return Err("agent.max_steps must be greater than 0".into());
        }
        Ok(())
    }

    /// A copy safe to print: the key replaced by a marker.
    pub fn redacted(&self) -> Self {
        Self { api_key: self.api_key.as_ref().map(|_| "<redacted>".into()), ..self.clone() }
    }
}
