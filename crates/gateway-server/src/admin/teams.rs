//! `/team/*`, `/organization/*` and `/user/*`.

use super::{apply_policy, entity_json, field_error, keys, not_found, AdminRequest};
use crate::budget::now;
use crate::errors::ApiError;
use crate::gateway::Gateway;
use gateway_budget::{
    BudgetStore, Entity, EntityId, Level, ListFilter, OrgRecord, TeamRecord, UserRecord,
};
use http::{Method, StatusCode};
use serde_json::{json, Value};

pub(super) async fn route(
    gateway: &Gateway,
    request: &AdminRequest,
    path: &str,
) -> Result<Value, ApiError> {
    match path {
        "/team/new" => {
            request.expect(Method::POST)?;
            let team_id = request.text("team_id").unwrap_or_else(new_id);
            let mut team = TeamRecord::new(team_id, now());
            team.team_alias = request.text("team_alias");
            team.organization_id = request.text("organization_id");
            apply_policy(&mut team.policy, &request.body)?;
            create(gateway, Entity::Team(team)).await
        }
        "/team/update" => {
            request.expect(Method::POST)?;
            let id = EntityId::Team(required(request, "team_id")?);
            update(gateway, request, id).await
        }
        "/team/info" => {
            let team_id = required(request, "team_id")?;
            let team = load(gateway, &EntityId::Team(team_id.clone())).await?;
            let keys = owned_keys(
                gateway,
                ListFilter {
                    team_id: Some(team_id.clone()),
                    ..ListFilter::default()
                },
            )
            .await?;
            Ok(json!({"team_id": team_id, "team_info": entity_json(&team), "keys": keys}))
        }
        "/team/list" => list(gateway, Level::Team).await,
        "/team/delete" => {
            request.expect(Method::POST)?;
            let ids = request
                .strings("team_ids")?
                .ok_or_else(|| field_error("team_ids", "is required"))?;
            let mut deleted = Vec::new();
            for team_id in ids {
                let id = EntityId::Team(team_id.clone());
                let existed = gateway
                    .budgets
                    .store
                    .delete(&id)
                    .await
                    .map_err(|e| ApiError::from_store(&e))?;
                if gateway.budgets.engine.remove(&id) || existed {
                    deleted.push(team_id);
                }
            }
            Ok(json!({"deleted_teams": deleted}))
        }
        "/organization/new" => {
            request.expect(Method::POST)?;
            let alias = required(request, "organization_alias")?;
            let organization_id = request.text("organization_id").unwrap_or_else(new_id);
            let mut organization = OrgRecord::new(organization_id, now());
            organization.organization_alias = Some(alias);
            apply_policy(&mut organization.policy, &request.body)?;
            create(gateway, Entity::Organization(organization)).await
        }
        "/organization/update" => {
            request.expect(Method::POST)?;
            let id = EntityId::Organization(required(request, "organization_id")?);
            update(gateway, request, id).await
        }
        "/organization/info" => {
            let id = EntityId::Organization(required(request, "organization_id")?);
            let organization = load(gateway, &id).await?;
            let teams = gateway
                .budgets
                .store
                .list(
                    Level::Team,
                    &ListFilter {
                        organization_id: Some(id.as_str().to_owned()),
                        ..ListFilter::default()
                    },
                )
                .await
                .map_err(|e| ApiError::from_store(&e))?;
            let mut value = entity_json(&organization);
            value["teams"] = teams.iter().map(|team| live_json(gateway, team)).collect();
            Ok(value)
        }
        "/organization/list" => list(gateway, Level::Organization).await,
        "/user/new" => {
            request.expect(Method::POST)?;
            let user_id = request.text("user_id").unwrap_or_else(new_id);
            let mut user = UserRecord::new(user_id.clone(), now());
            user.user_email = request.text("user_email");
            user.user_alias = request.text("user_alias");
            user.user_role = request.text("user_role");
            apply_policy(&mut user.policy, &request.body)?;
            let user_json = create(gateway, Entity::User(user)).await?;
            let auto_create_key = request
                .body
                .get("auto_create_key")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if !auto_create_key {
                return Ok(user_json);
            }
            // The user's first key carries the user id, not the user's limits.
            let key_request = AdminRequest {
                method: Method::POST,
                query: Default::default(),
                body: [("user_id".to_owned(), json!(user_id))]
                    .into_iter()
                    .collect(),
            };
            let (generated, record) = keys::create_key(gateway, &key_request, None).await?;
            let mut value = user_json;
            if let Value::Object(map) = &mut value {
                map.insert("key".to_owned(), json!(generated.key.expose()));
                map.insert("key_name".to_owned(), json!(record.key_name));
                map.insert("token".to_owned(), json!(record.token.as_str()));
            }
            Ok(value)
        }
        "/user/info" => {
            let user_id = required(request, "user_id")?;
            let user = load(gateway, &EntityId::User(user_id.clone())).await?;
            let keys = owned_keys(
                gateway,
                ListFilter {
                    user_id: Some(user_id.clone()),
                    ..ListFilter::default()
                },
            )
            .await?;
            Ok(json!({"user_id": user_id, "user_info": entity_json(&user), "keys": keys}))
        }
        other => Err(not_found(other)),
    }
}

fn required(request: &AdminRequest, name: &str) -> Result<String, ApiError> {
    request
        .text(name)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| field_error(name, "is required"))
}

/// A random UUID-shaped id.
fn new_id() -> String {
    let high = fastrand::u64(..);
    let low = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0x0fff,
        ((low >> 48) & 0x3fff) | 0x8000,
        low & 0xffff_ffff_ffff
    )
}

async fn create(gateway: &Gateway, entity: Entity) -> Result<Value, ApiError> {
    gateway
        .budgets
        .store
        .create(&entity)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    gateway.budgets.upsert(entity.clone(), now());
    Ok(entity_json(&entity))
}

async fn load(gateway: &Gateway, id: &EntityId) -> Result<Entity, ApiError> {
    if let Some(entity) = gateway.budgets.engine.get(id) {
        return Ok(entity);
    }
    gateway
        .budgets
        .store
        .get(id)
        .await
        .map_err(|e| ApiError::from_store(&e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                format!("{} {} not found", id.level(), id.as_str()),
            )
        })
}

async fn update(
    gateway: &Gateway,
    request: &AdminRequest,
    id: EntityId,
) -> Result<Value, ApiError> {
    let mut entity = load(gateway, &id).await?;
    apply_policy(entity.policy_mut(), &request.body)?;
    let now = now();
    match &mut entity {
        Entity::Team(team) => {
            if let Some(alias) = request.text("team_alias") {
                team.team_alias = Some(alias);
            }
            if let Some(organization) = request.text("organization_id") {
                team.organization_id = Some(organization);
            }
            team.updated_at = now;
        }
        Entity::Organization(organization) => {
            if let Some(alias) = request.text("organization_alias") {
                organization.organization_alias = Some(alias);
            }
            organization.updated_at = now;
        }
        Entity::User(user) => user.updated_at = now,
        Entity::Key(key) => key.updated_at = now,
    }
    gateway
        .budgets
        .store
        .update(&entity)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    gateway.budgets.upsert(entity.clone(), now);
    Ok(entity_json(&entity))
}

/// A stored record with the engine's live spend.
fn live_json(gateway: &Gateway, stored: &Entity) -> Value {
    let live = gateway.budgets.engine.get(&stored.id());
    entity_json(live.as_ref().unwrap_or(stored))
}

async fn list(gateway: &Gateway, level: Level) -> Result<Value, ApiError> {
    let records = gateway
        .budgets
        .store
        .list(level, &ListFilter::default())
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(records
        .iter()
        .map(|record| live_json(gateway, record))
        .collect())
}

async fn owned_keys(gateway: &Gateway, filter: ListFilter) -> Result<Vec<Value>, ApiError> {
    let keys = gateway
        .budgets
        .store
        .list(Level::Key, &filter)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(keys.iter().map(|key| live_json(gateway, key)).collect())
}
