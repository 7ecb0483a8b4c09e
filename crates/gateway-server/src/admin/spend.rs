//! `/spend/logs` and `/global/spend/report`.

use super::{field_error, not_found, AdminRequest};
use crate::errors::ApiError;
use crate::gateway::Gateway;
use gateway_budget::{
    BudgetStore, Day, KeyHash, ReportDimension, SpendLogQuery, SpendLogRow, SpendReportQuery,
};
use serde_json::{json, Value};

pub(super) async fn route(
    gateway: &Gateway,
    request: &AdminRequest,
    path: &str,
) -> Result<Value, ApiError> {
    match path {
        "/spend/logs" => logs(gateway, request).await,
        "/global/spend/report" => report(gateway, request).await,
        other => Err(not_found(other)),
    }
}

fn day(request: &AdminRequest, name: &str) -> Result<Option<Day>, ApiError> {
    request
        .text(name)
        .map(|text| {
            text.parse::<Day>()
                .map_err(|error| field_error(name, &error.to_string()))
        })
        .transpose()
}

fn key_hash(request: &AdminRequest) -> Result<Option<String>, ApiError> {
    request
        .text("api_key")
        .map(|key| {
            KeyHash::from_key_or_hash(&key)
                .map(|hash| hash.to_string())
                .map_err(|error| field_error("api_key", &error.to_string()))
        })
        .transpose()
}

async fn logs(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let query = SpendLogQuery {
        key_hash: key_hash(request)?,
        team_id: request.text("team_id"),
        user_id: request.text("user_id"),
        model_group: request.text("model"),
        start: day(request, "start_date")?.map(Day::start),
        end: day(request, "end_date")?.map(|day| day.next().start()),
        limit: request
            .text("limit")
            .and_then(|limit| limit.parse().ok())
            .or(Some(1000)),
    };
    let mut rows = gateway
        .budgets
        .store
        .query_spend_logs(&query)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    if let Some(request_id) = request.text("request_id") {
        rows.retain(|row| row.request_id == request_id);
    }
    Ok(rows.iter().map(row_json).collect())
}

/// A spend log row with LiteLLM's `LiteLLM_SpendLogs` field names.
fn row_json(row: &SpendLogRow) -> Value {
    json!({
        "request_id": row.request_id,
        "call_type": row.call_type,
        "api_key": row.key_hash,
        "key_alias": row.key_alias,
        "spend": row.spend.as_usd(),
        "total_tokens": row.prompt_tokens + row.completion_tokens,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "startTime": row.start_time.to_string(),
        "endTime": row.end_time.to_string(),
        "request_duration_ms": row.latency_ms(),
        "time_to_first_token_ms": row.time_to_first_token_ms,
        "model": row.model,
        "model_group": row.model_group,
        "model_id": row.deployment_id,
        "custom_llm_provider": row.provider,
        "user": row.user_id,
        "team_id": row.team_id,
        "organization_id": row.organization_id,
        "end_user": row.end_user,
        "status": row.status.as_str(),
        "error_kind": row.error_kind,
        "cache_hit": row.cache_hit.to_string(),
        "request_tags": row.tags,
    })
}

async fn report(gateway: &Gateway, request: &AdminRequest) -> Result<Value, ApiError> {
    let start_day =
        day(request, "start_date")?.ok_or_else(|| field_error("start_date", "is required"))?;
    let end_day =
        day(request, "end_date")?.ok_or_else(|| field_error("end_date", "is required"))?;
    let group_by_text = request.text("group_by").unwrap_or_else(|| "day".to_owned());
    let mut group_by = Vec::new();
    for name in group_by_text.split(',').map(str::trim) {
        group_by.push(match name {
            "day" => ReportDimension::Day,
            "api_key" | "key" => ReportDimension::Key,
            "team" => ReportDimension::Team,
            "model" => ReportDimension::Model,
            _ => {
                return Err(field_error(
                    "group_by",
                    "must be day, api_key, team or model (comma-separated to combine)",
                ))
            }
        });
    }
    let query = SpendReportQuery {
        start_day,
        end_day,
        group_by,
        key_hash: key_hash(request)?,
        team_id: request.text("team_id"),
    };
    let rows = gateway
        .budgets
        .store
        .spend_report(&query)
        .await
        .map_err(|e| ApiError::from_store(&e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut value = json!({
                "total_cost": row.spend.as_usd(),
                "total_input_tokens": row.prompt_tokens,
                "total_output_tokens": row.completion_tokens,
                "requests": row.requests,
            });
            if let Some(day) = row.day {
                value["group_by_day"] = json!(day.to_string());
            }
            if let Some(key) = &row.key_hash {
                value["api_key"] = json!(key);
            }
            if let Some(team) = &row.team_id {
                value["team_id"] = json!(team);
            }
            if let Some(model) = &row.model_group {
                value["model"] = json!(model);
            }
            value
        })
        .collect())
}
