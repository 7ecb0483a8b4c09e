//! Prices and the cost of a request, in integer money.
//!
//! Prices come, in order, from the deployment's own configuration
//! (`input_cost_per_token`, ...), then from a LiteLLM
//! `model_prices_and_context_window.json` file the operator gave by path, then
//! from a small built-in table of approximate public list prices. The file
//! wins over the built-in table because an operator who supplies a file chose
//! it on purpose; the table is a convenience. Nothing here fetches anything.

use serde_json::{Map, Value};
use std::collections::HashMap;

use gateway_types::{NanoUsd, Usage};

use crate::error::BudgetError;

/// Pico-dollars (1e-12 USD) in one dollar. Per-token prices are kept in
/// pico-dollars so that prices like $0.01875 per million tokens stay exact.
const PICO_PER_USD: f64 = 1e12;
/// Pico-dollars in one nano-dollar.
const PICO_PER_NANO: i128 = 1_000;

/// Per-token prices of one model, in pico-USD per token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelPrices {
    /// Price of one uncached input token.
    pub input_pico_per_token: i64,
    /// Price of one output token.
    pub output_pico_per_token: i64,
    /// Price of one input token read from the provider's cache; `None` means
    /// the input price.
    pub cached_input_pico_per_token: Option<i64>,
}

/// Token counts to price. `prompt_tokens` includes `cached_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens served from the provider's cache.
    pub cached_tokens: u64,
}

/// Prices by model name: an optional prices file over the built-in table.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    file: HashMap<String, ModelPrices>,
}

/// Approximate public list prices in USD per million tokens (input, output,
/// cached input), as published by the providers in 2025. They are a fallback
/// so that budgets work out of the box; configure prices or a prices file for
/// billing-grade numbers.
const BUILT_IN: &[(&str, f64, f64, Option<f64>)] = &[
    ("gpt-4o", 2.50, 10.00, Some(1.25)),
    ("gpt-4o-mini", 0.15, 0.60, Some(0.075)),
    ("gpt-4.1", 2.00, 8.00, Some(0.50)),
    ("gpt-4.1-mini", 0.40, 1.60, Some(0.10)),
    ("gpt-4.1-nano", 0.10, 0.40, Some(0.025)),
    ("o1", 15.00, 60.00, Some(7.50)),
    ("o1-mini", 1.10, 4.40, Some(0.55)),
    ("o3", 2.00, 8.00, Some(0.50)),
    ("o3-mini", 1.10, 4.40, Some(0.55)),
    ("claude-3-5-sonnet", 3.00, 15.00, Some(0.30)),
    ("claude-3.5-sonnet", 3.00, 15.00, Some(0.30)),
    ("claude-3-7-sonnet", 3.00, 15.00, Some(0.30)),
    ("claude-3.7-sonnet", 3.00, 15.00, Some(0.30)),
    ("claude-sonnet-4", 3.00, 15.00, Some(0.30)),
    ("claude-4-sonnet", 3.00, 15.00, Some(0.30)),
    ("claude-3-5-haiku", 0.80, 4.00, Some(0.08)),
    ("claude-3.5-haiku", 0.80, 4.00, Some(0.08)),
    ("claude-3-haiku", 0.25, 1.25, Some(0.03)),
    ("claude-3-opus", 15.00, 75.00, Some(1.50)),
    ("claude-opus-4", 15.00, 75.00, Some(1.50)),
    ("claude-4-opus", 15.00, 75.00, Some(1.50)),
    ("gemini-1.5-flash", 0.075, 0.30, Some(0.01875)),
    ("gemini-1.5-pro", 1.25, 5.00, Some(0.3125)),
    ("gemini-2.0-flash", 0.10, 0.40, Some(0.025)),
    ("gemini-2.5-flash", 0.30, 2.50, Some(0.075)),
    ("gemini-2.5-pro", 1.25, 10.00, Some(0.31)),
    ("text-embedding-3-small", 0.02, 0.0, None),
    ("text-embedding-3-large", 0.13, 0.0, None),
    ("text-embedding-ada-002", 0.10, 0.0, None),
];

impl ModelPrices {
    /// Prices in USD per token, as LiteLLM's config and prices file write them.
    pub fn per_token(input: f64, output: f64, cached_input: Option<f64>) -> Self {
        ModelPrices {
            input_pico_per_token: usd_to_pico(input),
            output_pico_per_token: usd_to_pico(output),
            cached_input_pico_per_token: cached_input.map(usd_to_pico),
        }
    }

    /// Prices in USD per million tokens.
    pub fn per_million(input: f64, output: f64, cached_input: Option<f64>) -> Self {
        Self::per_token(input / 1e6, output / 1e6, cached_input.map(|c| c / 1e6))
    }

    /// Reads deployment pricing from `litellm_params` or `model_info`:
    /// `input_cost_per_token`, `output_cost_per_token`,
    /// `cache_read_input_token_cost`, or the `_per_million_tokens` variants
    /// (`input_cost_per_million_tokens`, `output_cost_per_million_tokens`,
    /// `cache_read_input_token_cost_per_million_tokens`). `None` when neither
    /// an input nor an output price is present.
    pub fn from_params(params: &Map<String, Value>) -> Option<ModelPrices> {
        let per_token = |name: &str| params.get(name).and_then(Value::as_f64);
        let per_million = |name: &str| per_token(name).map(|usd| usd / 1e6);
        let input = per_token("input_cost_per_token")
            .or_else(|| per_million("input_cost_per_million_tokens"));
        let output = per_token("output_cost_per_token")
            .or_else(|| per_million("output_cost_per_million_tokens"));
        let cached = per_token("cache_read_input_token_cost")
            .or_else(|| per_million("cache_read_input_token_cost_per_million_tokens"))
            .or_else(|| per_million("cache_read_input_cost_per_million_tokens"));
        if input.is_none() && output.is_none() {
            return None;
        }
        Some(Self::per_token(
            input.unwrap_or(0.0),
            output.unwrap_or(0.0),
            cached,
        ))
    }
}

impl From<&Usage> for TokenUsage {
    fn from(usage: &Usage) -> Self {
        let cached = usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .unwrap_or(0);
        TokenUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: cached.min(usage.prompt_tokens),
        }
    }
}

impl TokenUsage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// The cost of a request: uncached input, cached input and output tokens at
/// their prices, rounded to the nearest nano-dollar.
pub fn cost(prices: &ModelPrices, usage: TokenUsage) -> NanoUsd {
    let cached = usage.cached_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens - cached;
    let cached_price = prices
        .cached_input_pico_per_token
        .unwrap_or(prices.input_pico_per_token);
    let pico = i128::from(uncached) * i128::from(prices.input_pico_per_token)
        + i128::from(cached) * i128::from(cached_price)
        + i128::from(usage.completion_tokens) * i128::from(prices.output_pico_per_token);
    let nanos = (pico + PICO_PER_NANO / 2).div_euclid(PICO_PER_NANO);
    NanoUsd(i64::try_from(nanos).unwrap_or(i64::MAX))
}

impl PriceBook {
    /// The built-in table only.
    pub fn builtin() -> Self {
        PriceBook::default()
    }

    /// Parses a LiteLLM `model_prices_and_context_window.json` document. Entries
    /// without token prices (images, audio, ...) and `sample_spec` are skipped.
    pub fn from_prices_json(json: &str) -> Result<PriceBook, BudgetError> {
        let document: Value =
            serde_json::from_str(json).map_err(|e| BudgetError::InvalidPrices(e.to_string()))?;
        let Value::Object(entries) = document else {
            return Err(BudgetError::InvalidPrices(
                "the top level is not an object".to_owned(),
            ));
        };
        let mut file = HashMap::new();
        for (name, entry) in entries {
            if name == "sample_spec" {
                continue;
            }
            if let Some(prices) = entry.as_object().and_then(ModelPrices::from_params) {
                file.insert(name, prices);
            }
        }
        Ok(PriceBook { file })
    }

    /// Models priced by the file.
    pub fn file_len(&self) -> usize {
        self.file.len()
    }

    /// Prices for an upstream model (`provider/model` or bare) or the
    /// deployment's `base_model`: the file first (`provider/model`, then the
    /// bare model, then the base model), then the built-in table.
    pub fn lookup(&self, model: &str, base_model: Option<&str>) -> Option<ModelPrices> {
        let bare = model.rsplit_once('/').map_or(model, |(_, bare)| bare);
        let candidates = [Some(model), Some(bare), base_model];
        candidates
            .iter()
            .flatten()
            .find_map(|name| self.file.get(*name).copied())
            .or_else(|| {
                candidates
                    .iter()
                    .flatten()
                    .find_map(|name| builtin_prices(name))
            })
    }

    /// Deployment prices when configured, else [`PriceBook::lookup`].
    pub fn resolve(
        &self,
        configured: Option<ModelPrices>,
        model: &str,
        base_model: Option<&str>,
    ) -> Option<ModelPrices> {
        configured.or_else(|| self.lookup(model, base_model))
    }
}

/// The built-in price of a model: exact name, or the longest table name the
/// model starts with followed by `-` (dated snapshots like
/// `gpt-4o-2024-08-06`). A provider prefix is stripped first.
pub fn builtin_prices(model: &str) -> Option<ModelPrices> {
    let bare = model.rsplit_once('/').map_or(model, |(_, bare)| bare);
    BUILT_IN
        .iter()
        .filter(|(name, ..)| {
            bare == *name
                || bare
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|(name, ..)| name.len())
        .map(|(_, input, output, cached)| ModelPrices::per_million(*input, *output, *cached))
}

fn usd_to_pico(usd: f64) -> i64 {
    if !usd.is_finite() || usd <= 0.0 {
        return 0;
    }
    (usd * PICO_PER_USD).round().min(i64::MAX as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64, cached: u64) -> TokenUsage {
        TokenUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
        }
    }

    #[test]
    fn cost_prices_cached_input_separately() {
        let prices = ModelPrices::per_token(1.5e-7, 6e-7, Some(7.5e-8));
        // 1000 * 150 + 0 + 500 * 600 nano
        assert_eq!(cost(&prices, usage(1_000, 500, 0)), NanoUsd(450_000));
        // 600 uncached * 150 + 400 cached * 75 + 500 * 600
        assert_eq!(cost(&prices, usage(1_000, 500, 400)), NanoUsd(420_000));
        let no_cache_price = ModelPrices::per_token(1.5e-7, 6e-7, None);
        assert_eq!(
            cost(&no_cache_price, usage(1_000, 500, 400)),
            NanoUsd(450_000)
        );
    }

    #[test]
    fn fractional_nano_prices_stay_exact_over_many_tokens() {
        let prices = ModelPrices::per_million(0.01875, 0.0, None);
        assert_eq!(cost(&prices, usage(1_000_000, 0, 0)), NanoUsd(18_750_000));
    }

    #[test]
    fn deployment_params_accept_per_token_and_per_million() {
        let params = |json: &str| {
            serde_json::from_str::<Map<String, Value>>(json)
                .ok()
                .and_then(|m| ModelPrices::from_params(&m))
        };
        assert_eq!(
            params(r#"{"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}"#),
            Some(ModelPrices::per_token(1e-6, 2e-6, None))
        );
        assert_eq!(
            params(
                r#"{"input_cost_per_million_tokens": 1, "output_cost_per_million_tokens": 2, "cache_read_input_token_cost": 1e-7}"#
            ),
            Some(ModelPrices::per_token(1e-6, 2e-6, Some(1e-7)))
        );
        assert_eq!(params(r#"{"model": "x"}"#), None);
    }

    #[test]
    fn builtin_table_matches_dated_snapshots_and_prefixes() {
        let check = |model: &str, input_per_million: Option<f64>| {
            let expected = input_per_million.map(|i| usd_to_pico(i / 1e6));
            assert_eq!(
                builtin_prices(model).map(|p| p.input_pico_per_token),
                expected,
                "{model}"
            );
        };
        check("gpt-4o", Some(2.5));
        check("gpt-4o-2024-08-06", Some(2.5));
        check("gpt-4o-mini-2024-07-18", Some(0.15));
        check("openai/gpt-4.1-mini", Some(0.4));
        check("anthropic/claude-3-5-sonnet-20241022", Some(3.0));
        check("gemini/gemini-2.5-pro", Some(1.25));
        check("text-embedding-3-small", Some(0.02));
        check("gpt-4oo", None);
        check("llama3", None);
    }

    #[test]
    fn prices_file_parses_and_wins_over_builtin() {
        let json = r#"{
            "sample_spec": {"input_cost_per_token": 0, "litellm_provider": "x", "mode": "chat"},
            "gpt-4o-mini": {"litellm_provider":"openai","mode":"chat","max_tokens":16384,
                "input_cost_per_token":1.5e-07,"output_cost_per_token":6e-07,"cache_read_input_token_cost":7.5e-08,
                "supports_vision":true},
            "ollama/llama3": {"litellm_provider":"ollama","mode":"chat","input_cost_per_token":0.0,"output_cost_per_token":0.0},
            "dall-e-3": {"litellm_provider":"openai","mode":"image_generation","output_cost_per_image":0.04},
            "gpt-4o": {"litellm_provider":"openai","mode":"chat","input_cost_per_token":1e-6,"output_cost_per_token":1e-6}
        }"#;
        let book = PriceBook::from_prices_json(json).map_err(|e| e.to_string());
        let Ok(book) = book else { panic!("{book:?}") };
        assert_eq!(book.file_len(), 3);
        assert_eq!(
            book.lookup("gpt-4o", None),
            Some(ModelPrices::per_token(1e-6, 1e-6, None))
        );
        assert_eq!(
            book.lookup("openai/gpt-4o-mini", None)
                .map(|p| p.output_pico_per_token),
            Some(600_000)
        );
        assert_eq!(
            book.lookup("ollama/llama3", None),
            Some(ModelPrices::default())
        );
        assert_eq!(
            book.lookup("my-finetune", Some("gpt-4o")),
            Some(ModelPrices::per_token(1e-6, 1e-6, None))
        );
        assert!(book.lookup("claude-opus-4-20250514", None).is_some());
        assert!(PriceBook::from_prices_json("[1]").is_err());
        let configured = ModelPrices::per_token(1.0, 1.0, None);
        assert_eq!(
            book.resolve(Some(configured), "gpt-4o", None),
            Some(configured)
        );
    }
}
