//! The router: groups of deployments and the call loop.

use crate::types::{
    AttemptError, Deployment, RequestOptions, RouteFailure, RouteReport, Routed, RouterError,
    RouterSettings,
};
use gateway_providers::{ChunkStream, ProviderError};
use gateway_types::{
    ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Message, ModelName, Role,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// Routes calls to the deployments of model groups.
///
/// Built once from validated settings and deployments; cheap to share behind
/// an `Arc`. Calls take `&self`.
#[derive(Debug)]
pub struct Router {
    settings: RouterSettings,
    groups: HashMap<ModelName, Vec<Arc<Deployment>>>,
    names: Vec<ModelName>,
}

impl Router {
    /// Builds a router. Deployments that share a `model_name` form a group;
    /// groups are listed in the order their first deployment appears.
    pub fn new(settings: RouterSettings, deployments: Vec<Deployment>) -> Self {
        let mut groups: HashMap<ModelName, Vec<Arc<Deployment>>> = HashMap::new();
        let mut names = Vec::new();
        for deployment in deployments {
            let group = groups.entry(deployment.model_name.clone()).or_default();
            if group.is_empty() {
                names.push(deployment.model_name.clone());
            }
            group.push(Arc::new(deployment));
        }
        Self {
            settings,
            groups,
            names,
        }
    }

    /// The router's settings.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The model groups, in configuration order.
    pub fn model_names(&self) -> &[ModelName] {
        &self.names
    }

    /// True when `name` is a model group.
    pub fn has_model(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The deployments of a group.
    pub fn deployments(&self, name: &str) -> Option<&[Arc<Deployment>]> {
        self.groups.get(name).map(Vec::as_slice)
    }

    /// A non-stream chat completion.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        self.run(&request.model, options, |deployment| async move {
            let request = with_system_prompt(request, deployment.settings.system_prompt.as_deref());
            deployment.provider.chat(&request, &options.call).await
        })
        .await
    }

    /// A streamed chat completion: resolves once a deployment answered 2xx.
    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ChunkStream>, RouteFailure> {
        self.run(&request.model, options, |deployment| async move {
            let request = with_system_prompt(request, deployment.settings.system_prompt.as_deref());
            deployment
                .provider
                .chat_stream(&request, &options.call)
                .await
        })
        .await
    }

    /// Embeddings.
    pub async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        options: &RequestOptions,
    ) -> Result<Routed<EmbeddingsResponse>, RouteFailure> {
        self.run(&request.model, options, |deployment| async move {
            deployment.provider.embeddings(request, &options.call).await
        })
        .await
    }

    async fn run<'a, T, F, Fut>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        call: F,
    ) -> Result<Routed<T>, RouteFailure>
    where
        F: Fn(&'a Deployment) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        let mut report = RouteReport::default();
        let Some((group_name, deployments)) = self.groups.get_key_value(model) else {
            return Err(RouteFailure {
                error: RouterError::UnknownModel(model.to_owned()),
                report,
            });
        };
        report.requested_group = Some(group_name.clone());
        report.model_group = Some(group_name.clone());
        let deployment = pick(deployments);
        report.deployment = Some(deployment.id.clone());
        report.provider = Some(deployment.provider.kind());
        report.api_base = deployment.provider.api_base().map(Arc::from);
        report.attempts = 1;
        let timeout = options
            .timeout
            .or(deployment.settings.timeout)
            .or(self.settings.timeout);
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, call(deployment)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Err(RouteFailure {
                        error: RouterError::Timeout(limit),
                        report,
                    })
                }
            },
            None => call(deployment).await,
        };
        match outcome {
            Ok(value) => Ok(Routed { value, report }),
            Err(error) => {
                report.errors.push(AttemptError {
                    deployment: deployment.id.clone(),
                    error: error.clone(),
                });
                Err(RouteFailure {
                    error: RouterError::Provider(error),
                    report,
                })
            }
        }
    }
}

/// Weighted random pick among the lowest-order tier.
fn pick(deployments: &[Arc<Deployment>]) -> &Deployment {
    let lowest = deployments
        .iter()
        .map(|deployment| deployment.settings.order)
        .min()
        .unwrap_or(0);
    let in_tier = |deployment: &&Arc<Deployment>| deployment.settings.order == lowest;
    let total: f64 = deployments
        .iter()
        .filter(in_tier)
        .map(|deployment| deployment.settings.weight.max(0.0))
        .sum();
    let mut point = fastrand::f64() * total;
    let mut last = &deployments[0];
    for deployment in deployments.iter().filter(in_tier) {
        last = deployment;
        point -= deployment.settings.weight.max(0.0);
        if point < 0.0 {
            return deployment;
        }
    }
    last
}

/// The request with the deployment's system prompt prepended, borrowed
/// unchanged when there is none.
pub(crate) fn with_system_prompt<'a>(
    request: &'a ChatRequest,
    system_prompt: Option<&str>,
) -> Cow<'a, ChatRequest> {
    match system_prompt {
        None => Cow::Borrowed(request),
        Some(prompt) => {
            let mut owned = request.clone();
            owned
                .messages
                .insert(0, Message::text(Role::System, prompt));
            Cow::Owned(owned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_types::MessageContent;

    #[test]
    fn system_prompt_is_prepended_only_when_set() {
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "hi")],
            ..ChatRequest::default()
        };
        assert!(matches!(
            with_system_prompt(&request, None),
            Cow::Borrowed(_)
        ));
        let with = with_system_prompt(&request, Some("be brief"));
        assert_eq!(with.messages.len(), 2);
        assert_eq!(with.messages[0].role, Role::System);
        assert_eq!(
            with.messages[0].content,
            Some(MessageContent::Text("be brief".to_owned()))
        );
    }
}
