//! Embeddings through the adapters that have them: Ollama's `/api/embed`
//! and Azure's deployment `/embeddings`, against loopback fakes.

mod support;

use gateway_providers::{
    BuildContext, CallContext, Env, HttpClient, HttpClientOptions, Provider, ProviderRegistry,
    ProviderSpec,
};
use gateway_types::{EmbeddingsRequest, Secret};
use serde_json::json;
use std::sync::Arc;
use support::{FakeUpstream, Scripted};

fn build(prefix: &str, model: &str, api_base: String) -> Arc<dyn Provider> {
    let spec = ProviderSpec {
        prefix: prefix.to_owned(),
        upstream_model: model.to_owned(),
        api_base: Some(api_base),
        api_key: Some(Secret::new("test-key")),
        ..ProviderSpec::default()
    };
    let cx = BuildContext {
        http: HttpClient::new(&HttpClientOptions::default()),
        env: Env::isolated(Default::default()),
    };
    match ProviderRegistry::builtin().build(&spec, &cx) {
        Ok(provider) => provider,
        Err(error) => panic!("build failed: {error}"),
    }
}

fn request() -> EmbeddingsRequest {
    match serde_json::from_value(json!({"model": "alias", "input": ["a", "b"]})) {
        Ok(request) => request,
        Err(error) => panic!("bad request: {error}"),
    }
}

#[tokio::test]
async fn ollama_embeddings_use_api_embed() {
    let answer = json!({"model": "all-minilm", "embeddings": [[0.1, 0.2], [0.3, 0.4]], "prompt_eval_count": 4});
    let fake = FakeUpstream::start(vec![Scripted::json(200, answer.to_string())]).await;
    let provider = build("ollama", "all-minilm", fake.base_url.clone());
    let result = provider
        .embeddings(&request(), &CallContext::default())
        .await;
    let Ok(response) = result else {
        panic!("embeddings failed: {result:?}")
    };
    assert_eq!(response.data.len(), 2);
    assert_eq!(response.data[1].embedding, json!([0.3, 0.4]));
    assert_eq!(response.usage.map(|usage| usage.prompt_tokens), Some(4));
    let received = fake.only_request();
    assert_eq!(received.uri, "/api/embed");
    assert_eq!(
        received.body,
        json!({"model": "all-minilm", "input": ["a", "b"]})
    );
}

#[tokio::test]
async fn azure_embeddings_use_the_deployment_url() {
    let answer = json!({"object": "list", "model": "text-embedding-3-small",
                        "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}, {"object": "embedding", "index": 1, "embedding": [0.2]}],
                        "usage": {"prompt_tokens": 2, "total_tokens": 2}});
    let fake = FakeUpstream::start(vec![Scripted::json(200, answer.to_string())]).await;
    let provider = build("azure", "embed-deployment", fake.base_url.clone());
    let result = provider
        .embeddings(&request(), &CallContext::default())
        .await;
    let Ok(response) = result else {
        panic!("embeddings failed: {result:?}")
    };
    assert_eq!(response.data.len(), 2);
    let received = fake.only_request();
    assert_eq!(
        received.uri,
        format!(
            "/openai/deployments/embed-deployment/embeddings?api-version={}",
            gateway_providers::azure::DEFAULT_API_VERSION
        )
    );
    assert_eq!(received.header("api-key"), Some("test-key"));
}

#[tokio::test]
async fn chat_only_adapters_say_embeddings_are_unsupported() {
    let fake = FakeUpstream::start(Vec::new()).await;
    for prefix in ["anthropic", "gemini"] {
        let provider = build(prefix, "m", fake.base_url.clone());
        let result = provider
            .embeddings(&request(), &CallContext::default())
            .await;
        assert_eq!(
            result.map(|_| ()).map_err(|error| error.kind),
            Err(gateway_providers::ErrorKind::Unsupported),
            "{prefix}"
        );
    }
}
