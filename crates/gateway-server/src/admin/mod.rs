//! The admin API, compatible with LiteLLM's management endpoints: keys,
//! teams, organizations, users and spend. Callers are admins (checked by
//! the dispatcher). Every change is written to the store first, then to the
//! in-memory engine; a store failure answers 500 with a generic message.
//! Money is float USD in JSON, times are RFC 3339.

mod keys;
mod spend;
mod teams;

use crate::errors::ApiError;
use crate::gateway::Gateway;
use crate::http::{json_response, read_body, Body};
use bytes::Bytes;
use gateway_budget::{BudgetDuration, Entity, Policy};
use http::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

/// True for the admin API's paths.
pub(crate) fn is_admin_route(path: &str) -> bool {
    [
        "/key/",
        "/team/",
        "/organization/",
        "/user/",
        "/spend/",
        "/global/spend/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// An admin request, read whole.
pub(crate) struct AdminRequest {
    pub(crate) method: Method,
    pub(crate) query: HashMap<String, String>,
    pub(crate) body: Map<String, Value>,
}

/// Answers one admin request.
pub(crate) async fn route<B>(
    gateway: &Gateway,
    request: Request<B>,
    path: String,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let bytes = read_body(body, None, MAX_ADMIN_BODY).await?;
    let body = if bytes.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(ApiError::invalid_request("the body must be a JSON object")),
            Err(error) => {
                return Err(ApiError::invalid_request(format!(
                    "the request body is not valid JSON: {error}"
                )))
            }
        }
    };
    let request = AdminRequest {
        method: parts.method,
        query,
        body,
    };
    let value = match path.as_str() {
        path if path.starts_with("/key/") => keys::route(gateway, &request, path).await?,
        path if path.starts_with("/spend/") || path.starts_with("/global/spend/") => {
            spend::route(gateway, &request, path).await?
        }
        path => teams::route(gateway, &request, path).await?,
    };
    Ok(json_response(StatusCode::OK, &value))
}

/// `GET /key/info` for a non-admin key: its own record, whatever it asked.
pub(crate) fn own_key_info(
    gateway: &Gateway,
    key: &gateway_budget::KeyRecord,
) -> Result<Response<Body>, ApiError> {
    let id = gateway_budget::EntityId::Key(key.token.clone());
    let live = gateway
        .budgets
        .engine
        .get(&id)
        .unwrap_or_else(|| Entity::Key(key.clone()));
    let mut info = entity_json(&live);
    if let Value::Object(map) = &mut info {
        map.remove("token");
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"key": key.key_name, "info": info}),
    ))
}

pub(crate) fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("no admin route {path}"),
    )
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => match text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    index += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl AdminRequest {
    /// A string field of the body, else of the query.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.body.get(name) {
            Some(Value::String(text)) => Some(text.clone()),
            _ => self.query.get(name).cloned(),
        }
    }

    /// A list of strings from the body.
    pub(crate) fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|_| field_error(name, "must be a list of strings")),
        }
    }

    /// Requires a method.
    pub(crate) fn expect(&self, method: Method) -> Result<(), ApiError> {
        if self.method == method {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                format!("use {method} for this route"),
            ))
        }
    }
}

pub(crate) fn field_error(name: &str, reason: &str) -> ApiError {
    ApiError::invalid_request(format!("`{name}` {reason}")).with_param(name)
}

/// Applies the policy fields present (and not null) in `body`.
pub(crate) fn apply_policy(policy: &mut Policy, body: &Map<String, Value>) -> Result<(), ApiError> {
    let present = |name: &str| body.get(name).filter(|value| !value.is_null());
    let money = |name: &'static str| -> Result<Option<gateway_types::NanoUsd>, ApiError> {
        match present(name) {
            None => Ok(None),
            Some(value) => match value.as_f64() {
                Some(usd) if usd.is_finite() && usd >= 0.0 => {
                    Ok(Some(gateway_types::NanoUsd::from_usd(usd)))
                }
                _ => Err(field_error(name, "must be a non-negative number of USD")),
            },
        }
    };
    let count = |name: &'static str| -> Result<Option<u64>, ApiError> {
        match present(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| field_error(name, "must be a non-negative integer")),
        }
    };
    if let Some(value) = present("models") {
        policy.models = serde_json::from_value(value.clone())
            .map_err(|_| field_error("models", "must be a list of model names"))?;
    }
    if let Some(amount) = money("max_budget")? {
        policy.max_budget = Some(amount);
    }
    if let Some(amount) = money("soft_budget")? {
        policy.soft_budget = Some(amount);
    }
    if let Some(value) = present("budget_duration") {
        let text = value
            .as_str()
            .ok_or_else(|| field_error("budget_duration", "must be a string like 30d"))?;
        policy.budget_duration = Some(
            text.parse::<BudgetDuration>()
                .map_err(|error| field_error("budget_duration", &error.to_string()))?,
        );
    }
    if let Some(limit) = count("rpm_limit")? {
        policy.rpm_limit = Some(limit);
    }
    if let Some(limit) = count("tpm_limit")? {
        policy.tpm_limit = Some(limit);
    }
    if let Some(limit) = count("max_parallel_requests")? {
        policy.max_parallel_requests = Some(u32::try_from(limit).unwrap_or(u32::MAX));
    }
    if let Some(value) = present("blocked") {
        policy.blocked = value
            .as_bool()
            .ok_or_else(|| field_error("blocked", "must be true or false"))?;
    }
    if let Some(value) = present("metadata") {
        policy.metadata = value
            .as_object()
            .cloned()
            .ok_or_else(|| field_error("metadata", "must be an object"))?;
    }
    if let Some(value) = present("tags") {
        policy.tags = serde_json::from_value(value.clone())
            .map_err(|_| field_error("tags", "must be a list of strings"))?;
    }
    Ok(())
}

/// A record as LiteLLM-style JSON: money in USD, times in RFC 3339.
pub(crate) fn entity_json(entity: &Entity) -> Value {
    let value = match entity {
        Entity::Key(key) => serde_json::to_value(key),
        Entity::Team(team) => serde_json::to_value(team),
        Entity::User(user) => serde_json::to_value(user),
        Entity::Organization(org) => serde_json::to_value(org),
    };
    let mut value = value.unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in ["spend", "max_budget", "soft_budget"] {
            if let Some(nanos) = map.get(field).and_then(Value::as_i64) {
                map.insert(
                    field.to_owned(),
                    Value::from(gateway_types::NanoUsd(nanos).as_usd()),
                );
            }
        }
        for field in ["created_at", "updated_at", "budget_reset_at", "expires"] {
            if let Some(millis) = map.get(field).and_then(Value::as_i64) {
                map.insert(
                    field.to_owned(),
                    Value::from(gateway_budget::Timestamp(millis).to_string()),
                );
            }
        }
    }
    value
}
