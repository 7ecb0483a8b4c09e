//! `/key/*`: generate, update, info, list, delete, block, unblock, regenerate.

use super::{apply_policy, entity_json, field_error, not_found, AdminRequest};
use crate::budget::now;
use crate::errors::ApiError;
use crate::gateway::Gateway;
use gateway_budget::{
    custom_key, generate_key, BudgetDuration, BudgetStore, Entity, EntityId, GeneratedKey, KeyHash,
    KeyRecord, Level, ListFilter,
};
use http::{Method, StatusCode};
use serde_json::{json, Value};

pub(super) async fn route(
    gateway: &Gateway,
    request: &AdminRequest,
    path: &str,
) -> Result<Value, ApiError> {
    match path {
        "/key/generate" => {
            request.expect(Method::POST)?;
            generate(gateway, request).await
        }
        "/key/update" => {
            request.expect(Method::POST)?;
            update(gateway, request).await
        }
        "/key/info" => info(gateway, request).await,
        "/key/list" => list(gateway, request).await,
        "/key/delete" => {
            request.expect(Method::POST)?;
            delete(gateway, request).await
        }
        "/key/block" | "/key/unblock" => {
            request.expect(Method::POST)?;
            set_blocked(gateway, request, path == "/key/block").await
        }
        "/key/regenerate" => {
            request.expect(Method::POST)?;
            let key = request
                .text("key")
                .ok_or_else(|| field_error("key", "is required"))?;
            regenerate(gateway, request, &key).await
        }
        other => match other
            .strip_prefix("/key/")
            .and_then(|rest| rest.strip_suffix("/regenerate"))
        {
            Some(key) => {
                request.expect(Method::POST)?;
                regenerate(gateway, request, key).await
            }
            None => Err(not_found(other)),
        },
    }
}

fn store_error(error: gateway_budget::StoreError) -> ApiError {
    match error {
        gateway_budget::StoreError::Conflict(_) => ApiError::invalid_request(
            "a key with this alias (or this key) already exists; choose another key_alias",
        )
        .with_param("key_alias"),
        other => ApiError::from_store(&other),
    }
}

fn key_reference(text: &str) -> Result<KeyHash, ApiError> {
    KeyHash::from_key_or_hash(text).map_err(|error| field_error("key", &error.to_string()))
}

fn key_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "Key not found in database",
    )
}

/// The live record (spend included) of a key: the engine's, else the store's.
async fn load_key(gateway: &Gateway, hash: &KeyHash) -> Result<KeyRecord, ApiError> {
    let id = EntityId::Key(hash.clone());
    let entity = match gateway.budgets.engine.get(&id) {
        Some(entity) => Some(entity),
        None => gateway
            .budgets
            .store
            .get(&id)
            .await
            .map_err(|e| ApiError::from_store(&e))?,
    };
    match entity {
        Some(Entity::Key(key)) => Ok(key),
        _ => Err(key_not_found()),
    }
}

/// Applies the key-level fields (owners, alias, duration) and the policy.
fn apply_key_fields(key: &mut KeyRecord, request: &AdminRequest) -> Result<(), ApiError> {
    let body = &request.body;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(alias) = text("key_alias") {
        key.key_alias = Some(alias);
    }
    if let Some(user) = text("user_id") {
        key.user_id = Some(user);
    }
    if let Some(team) = text("team_id") {
        key.team_id = Some(team);
    }
    if let Some(organization) = text("organization_id") {
        key.organization_id = Some(organization);
    }
    if let Some(duration) = text("duration") {
        let duration: BudgetDuration =
            duration
                .parse()
                .map_err(|error: gateway_budget::BudgetError| {
                    field_error("duration", &error.to_string())
                })?;
        key.expires = Some(duration.after(now()));
    }
    apply_policy(&mut key.policy, body)
}

fn generated_response(generated: &GeneratedKey, record: &KeyRecord) -> Value {
    let mut value = entity_json(&Entity::Key(record.clone()));
    if let Value::Object(map) = &mut value {
        map.insert("key".to_owned(), json!(generated.key.expose()));
        map.insert("token_id".to_owned(), json!(record.token.as_str()));
        map.entry("expires").or_insert(Value::Null);
    }
    value
}

fn new_key(custom: Option<String>) -> Result<GeneratedKey, ApiError> {
    match custom {
        Some(key) => custom_key(&key).map_err(|error| field_error("key", &error.to_string())),
        None => generate_key().map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                error.to_string(),
            )
        }),
    }
}

/// Creates a key and returns it with its plaintext, shown only here.
pub(super) async fn create_key(
    gateway: &Gateway,
    request: &AdminRequest,
    custom: Option<String>,
) -> Result<(GeneratedKey, KeyRecord), ApiError> {
    let generated = new_key(custom)?;
    let now = now();
    let mut record = KeyRecord::new(generated.hash.clone(), generated.key_name.clone(), now);
    apply_key_fields(&mut record, request)?;
    let entity = Entity::Key(record.clone());
    gateway
        .budgets
        .store
        .create(&entity)
        .await
        .map_err(store_error)?;
    gateway.budgets.upsert(entity, now);
    Ok((generated, record))
}

async fn generate(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let (generated, record) = create_key(gateway, request, request.text("key")).await?;
    Ok(generated_response(&generated, &record))
}

async fn update(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let reference = request
        .text("key")
        .ok_or_else(|| field_error("key", "is required"))?;
    let hash = key_reference(&reference)?;
    let mut record = load_key(gateway, &hash).await?;
    apply_key_fields(&mut record, request)?;
    let now = now();
    record.updated_at = now;
    let entity = Entity::Key(record);
    gateway
        .budgets
        .store
        .update(&entity)
        .await
        .map_err(store_error)?;
    gateway.budgets.upsert(entity.clone(), now);
    let mut value = entity_json(&entity);
    value["key"] = json!(reference);
    Ok(value)
}

async fn info(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let reference = request
        .text("key")
        .ok_or_else(|| field_error("key", "is required"))?;
    let hash = key_reference(&reference)?;
    let record = load_key(gateway, &hash).await?;
    let mut info = entity_json(&Entity::Key(record));
    if let Value::Object(map) = &mut info {
        map.remove("token");
    }
    Ok(json!({"key": reference, "info": info}))
}

async fn list(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let filter = ListFilter {
        user_id: request.text("user_id"),
        team_id: request.text("team_id"),
        organization_id: request.text("organization_id"),
        alias: request.text("key_alias"),
        limit: None,
        offset: 0,
    };
    let mut keys = gateway
        .budgets
        .store
        .list(Level::Key, &filter)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    if let Some(hash) = request.text("key_hash") {
        keys.retain(|key| key.id().as_str() == hash);
    }
    let size = request
        .text("size")
        .and_then(|size| size.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let page = request
        .text("page")
        .and_then(|page| page.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let full = request.text("return_full_object").as_deref() == Some("true");
    let total = keys.len();
    let shown: Vec<Value> = keys
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|key| {
            let live = gateway.budgets.engine.get(&key.id());
            if full {
                entity_json(live.as_ref().unwrap_or(key))
            } else {
                json!(key.id().as_str())
            }
        })
        .collect();
    Ok(json!({
        "keys": shown,
        "total_count": total,
        "current_page": page,
        "total_pages": total.div_ceil(size),
    }))
}

async fn delete(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let mut hashes = Vec::new();
    for reference in request.strings("keys")?.unwrap_or_default() {
        hashes.push((key_reference(&reference)?, reference));
    }
    for alias in request.strings("key_aliases")?.unwrap_or_default() {
        let filter = ListFilter {
            alias: Some(alias.clone()),
            ..ListFilter::default()
        };
        let found = gateway
            .budgets
            .store
            .list(Level::Key, &filter)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        for key in found {
            if let EntityId::Key(hash) = key.id() {
                hashes.push((hash, alias.clone()));
            }
        }
    }
    if hashes.is_empty() {
        return Err(field_error(
            "keys",
            "must list at least one key or key alias",
        ));
    }
    let mut deleted = Vec::new();
    for (hash, reference) in hashes {
        let id = EntityId::Key(hash);
        let existed = gateway
            .budgets
            .store
            .delete(&id)
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        let was_live = gateway.budgets.engine.remove(&id);
        if existed || was_live {
            deleted.push(reference);
        }
    }
    if deleted.is_empty() {
        return Err(key_not_found());
    }
    Ok(json!({"deleted_keys": deleted}))
}

async fn set_blocked(
    gateway: &Gateway,
    request: &AdminRequest,
    blocked: bool,
) -> Result<Value, ApiError> {
    let reference = request
        .text("key")
        .ok_or_else(|| field_error("key", "is required"))?;
    let hash = key_reference(&reference)?;
    let mut record = load_key(gateway, &hash).await?;
    record.policy.blocked = blocked;
    let entity = Entity::Key(record);
    gateway
        .budgets
        .store
        .update(&entity)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    gateway.budgets.upsert(entity.clone(), now());
    Ok(entity_json(&entity))
}

async fn regenerate(
    gateway: &Gateway,
    request: &AdminRequest,
    reference: &str,
) -> Result<Value, ApiError> {
    let old_hash = key_reference(reference)?;
    let old = load_key(gateway, &old_hash).await?;
    let generated = new_key(request.text("new_key"))?;
    let now = now();
    let mut record = old.clone();
    record.token = generated.hash.clone();
    record.key_name = generated.key_name.clone();
    record.updated_at = now;
    apply_key_fields(&mut record, request)?;
    let old_id = EntityId::Key(old_hash);
    let store = &gateway.budgets.store;
    // The alias is unique: free it before the new row takes it.
    store
        .delete(&old_id)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    let entity = Entity::Key(record.clone());
    if let Err(error) = store.create(&entity).await {
        // Put the old key back so a failed rotation loses nothing.
        let _ = store.create(&Entity::Key(old)).await;
        return Err(store_error(error));
    }
    gateway.budgets.engine.remove(&old_id);
    gateway.budgets.upsert(entity, now);
    Ok(generated_response(&generated, &record))
}
