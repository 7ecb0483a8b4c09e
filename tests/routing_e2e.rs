//! The router through the real server: fallbacks, cooldowns, timeouts,
//! context-window fallbacks and weights, against fault-injecting fake
//! upstreams. The exact policies (backoff schedules, strategy choices) are
//! tested in gateway-router with injected time and randomness; these tests
//! check that the server wires them up and reports what happened.

#![allow(clippy::unwrap_used)]

use gateway_tests::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn chat(model: &str, content: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

fn failing(status: u16) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": format!("injected {status}")}}),
    )
}

/// An upstream that accepts connections and never answers; counts them.
async fn hung_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn a_failing_primary_falls_back_after_its_retries() {
    let primary = FakeUpstream::start(failing(500)).await;
    let backup = FakeUpstream::start(Reply::json(200, upstream_completion("from backup"))).await;
    let config = format!(
        "model_list:\n  - model_name: primary\n    litellm_params: {{model: openai/p, api_base: {}}}\n    model_info: {{id: primary-1}}\n  - model_name: backup\n    litellm_params: {{model: openai/b, api_base: {}}}\n    model_info: {{id: backup-1}}\nrouter_settings:\n  num_retries: 1\n  retry_after: 0\n  fallbacks: [{{primary: [backup]}}]\n",
        primary.api_base(),
        backup.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    let response = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("primary", "hi"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["choices"][0]["message"]["content"], "from backup");
    // After a fallback the response names the model that answered, as LiteLLM does.
    assert_eq!(body["model"], "upstream-model-0613");
    assert_eq!(
        primary.received().len(),
        2,
        "one call and one retry on the primary"
    );
    assert_eq!(backup.received().len(), 1);
    assert_eq!(response.header("x-litellm-attempted-retries"), Some("1"));
    assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("1"));
    assert_eq!(response.header("x-gateway-attempts"), Some("3"));
    assert_eq!(response.header("x-litellm-model-group"), Some("backup"));
    assert_eq!(response.header("x-litellm-model-id"), Some("backup-1"));

    // A request may turn fallbacks off: the primary's error comes back.
    let mut no_fallback = chat("primary", "hi");
    no_fallback["disable_fallbacks"] = json!(true);
    post(&gateway.url("/v1/chat/completions"), &[], &no_fallback)
        .await
        .assert_error(502, "upstream_error");
    assert_eq!(
        backup.received().len(),
        1,
        "disable_fallbacks kept the backup out"
    );
}

#[tokio::test]
async fn a_request_can_bring_its_own_fallbacks() {
    let primary = FakeUpstream::start(failing(503)).await;
    let backup = FakeUpstream::start(Reply::json(200, upstream_completion("rescued"))).await;
    let config = format!(
        "model_list:\n  - model_name: primary\n    litellm_params: {{model: openai/p, api_base: {}}}\n  - model_name: other\n    litellm_params: {{model: openai/o, api_base: {}}}\nrouter_settings: {{num_retries: 0}}\n",
        primary.api_base(),
        backup.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    let mut request = chat("primary", "hi");
    request["fallbacks"] = json!(["other"]);
    let response = post(&gateway.url("/v1/chat/completions"), &[], &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        "rescued"
    );
    assert!(
        backup.received()[0].body.get("fallbacks").is_none(),
        "control fields never go upstream"
    );
}

#[tokio::test]
async fn a_rate_limited_deployment_is_cooled_and_routed_around() {
    let limited = FakeUpstream::start(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "slow down"}}).to_string(),
        headers: vec![("retry-after", "60".to_owned())],
    })
    .await;
    let healthy = FakeUpstream::start(Reply::json(200, upstream_completion("ok"))).await;
    // Two deployments of one group; the limited one is preferred (lower order).
    let config = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/a, api_base: {}, order: 1}}\n    model_info: {{id: limited}}\n  - model_name: chat\n    litellm_params: {{model: openai/b, api_base: {}, order: 2}}\n    model_info: {{id: healthy}}\nrouter_settings: {{num_retries: 1}}\n",
        limited.api_base(),
        healthy.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    for round in 0..4 {
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[],
            &chat("chat", "hi"),
        )
        .await;
        assert_eq!(response.status, 200, "round {round}: {}", response.text());
        assert_eq!(response.header("x-litellm-model-id"), Some("healthy"));
    }
    assert_eq!(
        limited.received().len(),
        1,
        "after its 429 the deployment cools for its retry-after"
    );
    assert_eq!(healthy.received().len(), 4);
}

#[tokio::test]
async fn a_hung_upstream_times_out_and_falls_back() {
    let (hung_base, accepted) = hung_upstream().await;
    let backup =
        FakeUpstream::start(Reply::json(200, upstream_completion("backup answered"))).await;
    let config = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/s, api_base: {hung_base}, timeout: 0.3}}\n  - model_name: backup\n    litellm_params: {{model: openai/b, api_base: {}}}\nrouter_settings:\n  num_retries: 0\n  timeout: 30\n  fallbacks: [{{slow: [backup]}}]\n",
        backup.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    let response = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("slow", "hi"),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["choices"][0]["message"]["content"],
        "backup answered"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(response.header("x-litellm-attempted-fallbacks"), Some("1"));

    // A stream whose first chunk never comes falls back the same way.
    let stream_config = config.replace("timeout: 0.3", "stream_timeout: 0.3");
    let gateway = TestGateway::start(&stream_config, &[]).await;
    let mut request = chat("slow", "hi");
    request["stream"] = json!(true);
    backup.set_reply(Reply::Sse {
        events: vec![
            upstream_chunk(Some("streamed backup"), Some("stop")),
            "[DONE]".to_owned(),
        ],
    });
    let response = post(&gateway.url("/v1/chat/completions"), &[], &request).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.text().contains("streamed backup"),
        "{}",
        response.text()
    );
    assert_eq!(
        response.sse_data().last().map(String::as_str),
        Some("[DONE]")
    );
}

#[tokio::test]
async fn a_hung_upstream_without_fallback_is_a_504() {
    let (hung_base, _accepted) = hung_upstream().await;
    let config = format!(
        "model_list:\n  - model_name: slow\n    litellm_params: {{model: openai/s, api_base: {hung_base}}}\nrouter_settings: {{num_retries: 0, timeout: 0.3}}\n"
    );
    let gateway = TestGateway::start(&config, &[]).await;
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("slow", "hi"),
    )
    .await
    .assert_error(504, "timeout");
}

#[tokio::test]
async fn oversized_input_goes_straight_to_the_context_window_fallback() {
    let small = FakeUpstream::start(Reply::json(200, upstream_completion("small"))).await;
    let large = FakeUpstream::start(Reply::json(200, upstream_completion("large"))).await;
    let config = format!(
        "model_list:\n  - model_name: small\n    litellm_params: {{model: openai/s, api_base: {}}}\n    model_info: {{max_input_tokens: 50}}\n  - model_name: large\n    litellm_params: {{model: openai/l, api_base: {}}}\n    model_info: {{max_input_tokens: 100000}}\nrouter_settings:\n  enable_pre_call_checks: true\n  context_window_fallbacks: [{{small: [large]}}]\n",
        small.api_base(),
        large.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    let short = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("small", "hello"),
    )
    .await;
    assert_eq!(short.json()["choices"][0]["message"]["content"], "small");
    let long_text = "the quick brown fox jumps over the lazy dog ".repeat(40);
    let long = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("small", &long_text),
    )
    .await;
    assert_eq!(long.status, 200, "{}", long.text());
    assert_eq!(long.json()["choices"][0]["message"]["content"], "large");
    assert_eq!(
        small.received().len(),
        1,
        "the oversized request never reached the small model"
    );
    assert_eq!(large.received().len(), 1);

    // Without a context-window fallback the client gets a clear 400.
    let strict = config.replace("  context_window_fallbacks: [{small: [large]}]\n", "");
    let gateway = TestGateway::start(&strict, &[]).await;
    let error = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("small", &long_text),
    )
    .await
    .assert_error(400, "context_length_exceeded");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("50"),
        "{error}"
    );
}

#[tokio::test]
async fn weights_decide_which_deployment_takes_the_traffic() {
    let heavy = FakeUpstream::start(Reply::json(200, upstream_completion("heavy"))).await;
    let idle = FakeUpstream::start(Reply::json(200, upstream_completion("idle"))).await;
    let config = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/a, api_base: {}, weight: 1}}\n  - model_name: chat\n    litellm_params: {{model: openai/b, api_base: {}, weight: 0}}\n",
        heavy.api_base(),
        idle.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    for _ in 0..20 {
        let response = post(
            &gateway.url("/v1/chat/completions"),
            &[],
            &chat("chat", "hi"),
        )
        .await;
        assert_eq!(response.status, 200);
    }
    assert_eq!(heavy.received().len(), 20, "a zero weight takes no traffic");
    assert!(idle.received().is_empty());

    // Equal weights: both deployments serve (the odds of one taking all 100
    // requests are 2^-99; the exact weighted pick is tested in the engine
    // with an injected random sequence).
    let even = config.replace("weight: 0", "weight: 1");
    let gateway = TestGateway::start(&even, &[]).await;
    for _ in 0..100 {
        assert_eq!(
            post(
                &gateway.url("/v1/chat/completions"),
                &[],
                &chat("chat", "hi")
            )
            .await
            .status,
            200
        );
    }
    assert!(!idle.received().is_empty() && heavy.received().len() > 20);
}

#[tokio::test]
async fn every_deployment_cooling_is_a_503_with_retry_after() {
    let broken = FakeUpstream::start(failing(401)).await;
    let config = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/a, api_base: {}}}\n    model_info: {{id: auth-broken}}\nrouter_settings: {{num_retries: 0, cooldown_time: 60, timeout: 1}}\n",
        broken.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    // The upstream rejects the gateway's own key: the deployment cools at once.
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("chat", "hi"),
    )
    .await
    .assert_error(502, "upstream_auth_error");
    let cooling = post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("chat", "hi"),
    )
    .await;
    cooling.assert_error(503, "no_healthy_deployment");
    let retry_after: u64 = cooling.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "retry-after {retry_after}");
    assert_eq!(
        broken.received().len(),
        1,
        "a cooling deployment gets no traffic"
    );

    // Operators see it: the deployment reports `cooling` and one cooldown entered.
    let metrics = send("GET", &gateway.url("/metrics"), &[], "").await;
    let samples = parse_exposition(&metrics.text());
    let state = |state: &str| {
        metric_sum(
            &samples,
            "gateway_deployment_state",
            &[("deployment", "auth-broken"), ("state", state)],
        )
    };
    assert_eq!(state("cooling"), 1.0, "{}", metrics.text());
    assert_eq!(state("healthy"), 0.0);
    let cooldowns = metric_sum(
        &samples,
        "gateway_deployment_cooldowns_total",
        &[("deployment", "auth-broken")],
    );
    assert_eq!(cooldowns, 1.0);
}

#[tokio::test]
async fn a_cooldown_that_ends_before_the_scrape_is_still_counted() {
    let broken = FakeUpstream::start(failing(401)).await;
    let healthy = FakeUpstream::start(Reply::json(200, upstream_completion("ok"))).await;
    let config = format!(
        "model_list:\n  - model_name: chat\n    litellm_params: {{model: openai/a, api_base: {}}}\n    model_info: {{id: brief-broken}}\n  - model_name: other\n    litellm_params: {{model: openai/b, api_base: {}}}\n    model_info: {{id: brief-other}}\nrouter_settings: {{num_retries: 0, cooldown_time: 5, timeout: 1}}\n",
        broken.api_base(),
        healthy.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    post(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat("chat", "hi"),
    )
    .await
    .assert_error(502, "upstream_auth_error");
    // The failing request itself counted the cooldown it started; move the
    // runtime's clock (the router's clock) past its 5 s end before the
    // scrape, then let time run again for the HTTP exchange.
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_secs(6)).await;
    tokio::time::resume();
    let samples = parse_exposition(&send("GET", &gateway.url("/metrics"), &[], "").await.text());
    let for_deployment = |name: &str, id: &str, state: Option<&str>| {
        let mut labels = vec![("deployment", id)];
        labels.extend(state.map(|state| ("state", state)));
        metric_sum(&samples, name, &labels)
    };
    assert_eq!(
        for_deployment("gateway_deployment_cooldowns_total", "brief-broken", None),
        1.0
    );
    assert_eq!(
        for_deployment("gateway_deployment_state", "brief-broken", Some("healthy")),
        1.0
    );
    assert_eq!(
        for_deployment("gateway_deployment_cooldowns_total", "brief-other", None),
        0.0
    );
}

#[tokio::test]
async fn wildcard_groups_route_unknown_names_and_send_the_requested_model_upstream() {
    let catch_all = FakeUpstream::start(Reply::json(200, upstream_completion("catch-all"))).await;
    let team = FakeUpstream::start(Reply::json(200, upstream_completion("team"))).await;
    let exact = FakeUpstream::start(Reply::json(200, upstream_completion("exact"))).await;
    // LiteLLM's wildcard forms: `*` with `openai/*`, and a prefix pattern.
    let config = format!(
        "model_list:\n  - model_name: \"*\"\n    litellm_params: {{model: \"openai/*\", api_base: {}}}\n  - model_name: \"team-*\"\n    litellm_params: {{model: \"openai/upstream-*-v2\", api_base: {}}}\n  - model_name: chat\n    litellm_params: {{model: openai/fixed, api_base: {}}}\n",
        catch_all.api_base(),
        team.api_base(),
        exact.api_base()
    );
    let gateway = TestGateway::start(&config, &[]).await;
    let url = gateway.url("/v1/chat/completions");

    let any = post(&url, &[], &chat("gpt-4o-mini", "hi")).await;
    assert_eq!(any.status, 200, "{}", any.text());
    assert_eq!(
        any.json()["model"],
        "gpt-4o-mini",
        "the answer keeps the name asked for"
    );
    assert_eq!(any.header("x-litellm-model-group"), Some("*"));
    assert_eq!(catch_all.received()[0].body["model"], "gpt-4o-mini");

    let specific = post(&url, &[], &chat("team-alpha", "hi")).await;
    assert_eq!(specific.json()["choices"][0]["message"]["content"], "team");
    assert_eq!(team.received()[0].body["model"], "upstream-alpha-v2");

    let configured = post(&url, &[], &chat("chat", "hi")).await;
    assert_eq!(
        configured.json()["choices"][0]["message"]["content"],
        "exact"
    );
    assert_eq!(exact.received()[0].body["model"], "fixed");

    let mut streamed = chat("gpt-4.1", "hi");
    streamed["stream"] = json!(true);
    catch_all.set_reply(Reply::Sse {
        events: vec![
            upstream_chunk(Some("streamed"), Some("stop")),
            "[DONE]".to_owned(),
        ],
    });
    let stream = post(&url, &[], &streamed).await;
    assert_eq!(stream.status, 200, "{}", stream.text());
    let first: serde_json::Value = serde_json::from_str(&stream.sse_data()[0]).unwrap();
    assert_eq!(first["model"], "gpt-4.1");
    assert_eq!(catch_all.received()[1].body["model"], "gpt-4.1");

    let models = send("GET", &gateway.url("/v1/models"), &[], "")
        .await
        .json();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["chat"], "patterns are routes, not models to list");
}
