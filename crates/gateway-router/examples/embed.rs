//! Embeds a router in a program: two groups, one falling back to the other,
//! no server and no store. Run with `cargo run -p gateway-router --example embed`.

use async_trait::async_trait;
use gateway_providers::mock::MockProvider;
use gateway_providers::{
    CallContext, ChunkStream, ErrorKind, Provider, ProviderError, ProviderKind,
};
use gateway_router::{Deployment, DeploymentSettings, RequestOptions, Router, RouterSettings};
use gateway_types::{ChatRequest, ChatResponse, DeploymentId, Message, ModelName, Role};
use std::sync::Arc;

/// A provider that is always overloaded.
#[derive(Debug)]
struct Overloaded;

#[async_trait]
impl Provider for Overloaded {
    fn kind(&self) -> ProviderKind {
        ProviderKind("overloaded")
    }
    async fn chat(&self, _: &ChatRequest, _: &CallContext) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::new(ErrorKind::Overloaded, "try later"))
    }
    async fn chat_stream(
        &self,
        _: &ChatRequest,
        _: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::new(ErrorKind::Overloaded, "try later"))
    }
}

fn deployment(id: &str, group: &str, provider: Arc<dyn Provider>) -> Deployment {
    let (id, model_name, settings) = (
        DeploymentId::from(id),
        ModelName::from(group),
        DeploymentSettings::default(),
    );
    Deployment {
        id,
        model_name,
        provider,
        settings,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = RouterSettings {
        num_retries: 0,
        fallbacks: [(ModelName::from("smart"), vec![ModelName::from("cheap")])].into(),
        ..RouterSettings::default()
    };
    let router = Router::new(
        settings,
        vec![
            deployment("smart-1", "smart", Arc::new(Overloaded)),
            deployment(
                "cheap-1",
                "cheap",
                Arc::new(MockProvider::new("cheap-model")),
            ),
        ],
    )?;
    let request = ChatRequest {
        model: "smart".to_owned(),
        messages: vec![Message::text(Role::User, "hello")],
        ..ChatRequest::default()
    };
    let routed = router
        .chat(&request, &RequestOptions::default())
        .await
        .map_err(|failure| failure.error)?;
    assert_eq!(routed.report.model_group, Some(ModelName::from("cheap")));
    assert_eq!((routed.report.attempts, routed.report.fallbacks), (2, 1));
    Ok(())
}
