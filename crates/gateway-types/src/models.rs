//! The models list (`GET /v1/models`).

use serde::{Deserialize, Serialize};

/// `{"object": "list", "data": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `"list"`.
    pub object: String,
    /// One entry per model alias the caller may use.
    pub data: Vec<ModelObject>,
}

/// One model alias as OpenAI lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelObject {
    /// The alias clients send as `model`.
    pub id: String,
    /// Always `"model"`.
    pub object: String,
    /// LiteLLM answers the constant 1677610602; so do we.
    pub created: i64,
    /// LiteLLM answers `"openai"`; so do we.
    pub owned_by: String,
}

impl ModelObject {
    /// The entry for one alias, with LiteLLM's constant fields.
    pub fn alias(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            object: "model".to_owned(),
            created: 1_677_610_602,
            owned_by: "openai".to_owned(),
        }
    }
}

impl ModelList {
    /// A list of aliases.
    pub fn new(data: Vec<ModelObject>) -> Self {
        Self {
            object: "list".to_owned(),
            data,
        }
    }
}
