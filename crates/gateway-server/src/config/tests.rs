use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::isolated(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::parse(
        text,
        None,
        env(&[
            ("OPENAI_API_KEY", "sk-openai"),
            ("AZURE_API_KEY_EU", "az"),
            ("LITELLM_MASTER_KEY", "sk-master"),
            ("DATABASE_URL", "postgres://x"),
        ]),
    )
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn canonical_litellm_example_parses() {
    let text = r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-eu, api_base: https://x.openai.azure.com/, api_key: os.environ/AZURE_API_KEY_EU, api_version: "2024-06-01", rpm: 6}
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, rpm: 100, order: 2}
    model_info: {id: my-openai-gpt4o, max_input_tokens: 128000}
  - model_name: local
    litellm_params: {model: ollama_chat/llama3, api_base: http://localhost:11434}
router_settings: {routing_strategy: simple-shuffle, num_retries: 2, timeout: 30, allowed_fails: 3, cooldown_time: 30, fallbacks: [{"gpt-4o": ["local"]}]}
litellm_settings: {drop_params: true, request_timeout: 600, callbacks: ["prometheus"], cache: true, cache_params: {type: redis}}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY, database_url: os.environ/DATABASE_URL, alerting: ["slack"]}
environment_variables: {REDIS_HOST: "localhost", REDIS_PORT: "6379"}
"#;
    let config = match parse(text) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(config.model_names(), vec!["gpt-4o", "local"]);
    let azure = &config.deployments[0];
    assert_eq!(azure.provider.prefix, "azure");
    assert_eq!(azure.provider.upstream_model, "gpt-4o-eu");
    assert_eq!(
        azure.provider.api_key.as_ref().map(Secret::expose),
        Some("az")
    );
    assert_eq!(azure.provider.api_version.as_deref(), Some("2024-06-01"));
    assert_eq!(azure.rpm, Some(6));
    assert_eq!(config.deployments[1].id, "my-openai-gpt4o");
    assert_eq!(config.deployments[1].order, 2);
    assert_eq!(config.deployments[1].max_input_tokens, Some(128_000));
    assert_eq!(config.deployments[2].provider.prefix, "ollama_chat");
    assert_eq!(config.router.num_retries, Some(2));
    assert_eq!(config.router.timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        config.router.routing.fallbacks,
        vec![("gpt-4o".to_owned(), vec!["local".to_owned()])]
    );
    assert_eq!(config.router.routing.allowed_fails, Some(3));
    assert_eq!(
        config.router.routing.cooldown_time,
        Some(Duration::from_secs(30))
    );
    assert!(config.litellm.drop_params);
    assert_eq!(
        config.general.master_key.as_ref().map(Secret::expose),
        Some("sk-master")
    );
    assert_eq!(config.env.get("REDIS_HOST").as_deref(), Some("localhost"));
    let warned: Vec<&str> = config.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(
        !warned.contains(&"litellm_settings.callbacks"),
        "the prometheus callback is built in: {warned:?}"
    );
    for key in ["litellm_settings.cache", "litellm_settings.cache_params"] {
        assert!(
            warned.contains(&key),
            "expected a warning for {key}, got {warned:?}"
        );
    }
    // A default id is stable across loads.
    let again = parse(text).map(|c| c.deployments[0].id.clone());
    assert_eq!(again.as_deref().ok(), Some(azure.id.as_str()));
}

#[test]
fn missing_environment_variable_names_the_key_path() {
    let message = error_of(
        "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/NOPE_NOT_SET}\n",
    );
    assert_eq!(
        message,
        "model_list[0].litellm_params.api_key: environment variable NOPE_NOT_SET is not set"
    );
}

#[test]
fn environment_variables_section_feeds_os_environ() {
    let text = "environment_variables: {MY_KEY: sk-from-section}\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/MY_KEY}\n";
    let key = parse(text)
        .ok()
        .and_then(|c| c.deployments[0].provider.api_key.clone());
    assert_eq!(key.as_ref().map(Secret::expose), Some("sk-from-section"));
}

#[test]
fn invalid_values_are_errors_with_paths() {
    let cases = [
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, rpm: lots}\n",
            "model_list[0].litellm_params.rpm",
        ),
        ("model_list:\n  - model_name: a\n", "model_list[0]"),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: llama3}\n",
            "model_list[0].litellm_params.model",
        ),
        (
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n    bogus: 1\n",
            "model_list[0]",
        ),
        (
            "router_settings: {routing_strategy: fastest}\n",
            "router_settings.routing_strategy",
        ),
        (
            "router_settings: {timeout: -3}\n",
            "router_settings.timeout",
        ),
        (
            "general_settings: {max_request_size_mb: 0}\n",
            "general_settings.max_request_size_mb",
        ),
        (
            "general_settings: {spend_logs_batch_size: 0}\n",
            "general_settings.spend_logs_batch_size",
        ),
        (
            "general_settings: {spend_logs_batch_size: -5}\n",
            "general_settings.spend_logs_batch_size",
        ),
        ("model_list: {a: 1}\n", "model_list"),
        ("[1, 2]\n", "config"),
        ("", "config"),
    ];
    for (text, path) in cases {
        let message = error_of(text);
        assert!(
            message.starts_with(path),
            "expected an error at `{path}`, got `{message}` for:\n{text}"
        );
    }
}

#[test]
fn invalid_yaml_reports_the_position() {
    let message = error_of("model_list:\n  - model_name: [unclosed\n");
    assert!(
        message.contains("invalid YAML") && message.contains("line"),
        "{message}"
    );
}

#[test]
fn completion_params_become_defaults_and_unknown_params_warn() {
    let text = "model_list:\n  - model_name: a\n    litellm_params: {model: mock/m, max_tokens: 50, temperature: 0.2, mock_response: hi, aws_region_name: us-east-1, headers: {X-Team: blue, X-Num: 7}, extra_headers: {X-More: 1}, extra_body: {foo: {bar: 1}}}\n    model_info: {system_prompt: be brief, mode: chat}\n";
    let Ok(config) = parse(text) else {
        panic!("parse failed")
    };
    let deployment = &config.deployments[0];
    assert_eq!(
        deployment.provider.defaults.get("max_tokens"),
        Some(&serde_json::json!(50))
    );
    assert_eq!(
        deployment.provider.settings.get("mock_response"),
        Some(&serde_json::json!("hi"))
    );
    assert_eq!(
        deployment.provider.headers,
        vec![
            ("X-Num".to_owned(), "7".to_owned()),
            ("X-Team".to_owned(), "blue".to_owned()),
            ("X-More".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(
        deployment.provider.extra_body.get("foo"),
        Some(&serde_json::json!({"bar": 1}))
    );
    assert_eq!(deployment.system_prompt.as_deref(), Some("be brief"));
    assert!(config
        .warnings
        .iter()
        .any(|w| w.path == "model_list[0].litellm_params.aws_region_name"));
}

#[test]
fn includes_concatenate_lists_and_replace_other_values() {
    let dir = std::env::temp_dir().join(format!("gateway-config-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).is_ok();
    assert!(write(
        "extra.yaml",
        "model_list:\n  - model_name: b\n    litellm_params: {model: mock/b}\nrouter_settings: {num_retries: 5}\n"
    ));
    assert!(write("main.yaml", "include: [extra.yaml]\nmodel_list:\n  - model_name: a\n    litellm_params: {model: mock/a}\nrouter_settings: {num_retries: 1}\n"));
    let config = GatewayConfig::parse(
        &std::fs::read_to_string(dir.join("main.yaml")).unwrap_or_default(),
        Some(&dir.join("main.yaml")),
        env(&[]),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(config) = config else {
        panic!("include failed")
    };
    assert_eq!(config.model_names(), vec!["a", "b"]);
    assert_eq!(config.router.num_retries, Some(5));
    let files = config.source.map(|source| source.files).unwrap_or_default();
    assert_eq!(
        files,
        vec![dir.join("main.yaml"), dir.join("extra.yaml")],
        "a reload and --watch know every file that was read"
    );
}

#[test]
fn operating_keys_are_read_and_prometheus_callbacks_are_built_in() {
    let config = parse(
        "litellm_settings:\n  callbacks: [prometheus, langfuse]\n  require_auth_for_metrics_endpoint: true\ngeneral_settings:\n  log_request_bodies: true\n",
    );
    let Ok(config) = config else {
        panic!("must parse")
    };
    assert!(config.general.log_request_bodies);
    assert!(config.litellm.require_auth_for_metrics_endpoint);
    assert!(
        config.source.is_none(),
        "text without a path cannot be re-read"
    );
    assert!(config.reread().is_none());
    let warned: Vec<&str> = config.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        warned,
        vec!["litellm_settings.callbacks"],
        "langfuse is not built in"
    );
    assert_eq!(
        parse("general_settings: {}\n")
            .map(|config| config.general.log_request_bodies)
            .ok(),
        Some(false),
        "bodies are not logged by default"
    );
    assert!(error_of("general_settings: {log_request_bodies: maybe}\n")
        .starts_with("general_settings.log_request_bodies:"));
}

#[test]
fn embedded_default_is_the_mock_quickstart() {
    let config = GatewayConfig::embedded_default();
    let Ok(config) = config else {
        panic!("embedded default must parse")
    };
    assert!(config
        .deployments
        .iter()
        .all(|d| d.provider.prefix == "mock"));
    assert!(config.general.master_key.is_none() || std::env::var("LITELLM_MASTER_KEY").is_ok());
}

#[test]
fn shipped_examples_parse_with_their_variables_set() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let variables = env(&[
        ("OPENAI_API_KEY", "sk-x"),
        ("OPENROUTER_API_KEY", "sk-or"),
        ("LITELLM_MASTER_KEY", "sk-master"),
    ]);
    let mut seen = 0;
    for entry in std::fs::read_dir(examples).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Err(error) = GatewayConfig::parse(&text, Some(&path), variables.clone()) {
            panic!("{} does not parse: {error}", path.display());
        }
        seen += 1;
    }
    assert!(
        seen >= 4,
        "expected the shipped example configs, found {seen}"
    );
}

#[test]
fn budget_settings_are_read_from_general_settings() {
    let text = r#"
model_list: []
general_settings:
  database_path: /var/lib/gateway/spend.db
  proxy_batch_write_at: 30
  spend_logs_batch_size: 750
  maximum_spend_logs_retention_period: 30d
  alerting: ["slack"]
  alert_to_webhook_url: {budget_alerts: ["http://hooks.example/a", "http://hooks.example/b"]}
  budget_alert_thresholds: [50, 90]
  keys:
    - {key: os.environ/APP_KEY, key_alias: app, models: [gpt-4o], max_budget: 5, budget_duration: 30d, rpm_limit: 10, user_role: proxy_admin}
"#;
    let config = GatewayConfig::parse(
        text,
        None,
        env(&[
            ("APP_KEY", "sk-app-0123456789"),
            ("SLACK_WEBHOOK_URL", "http://hooks.example/slack"),
        ]),
    );
    let budget = match config {
        Ok(config) => config.general.budget,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(
        budget.database_path,
        std::path::PathBuf::from("/var/lib/gateway/spend.db")
    );
    assert_eq!(budget.batch_write_interval, Duration::from_secs(30));
    assert_eq!(budget.spend_logs_batch_size, 750);
    assert_eq!(
        budget.spend_logs_retention,
        Some(gateway_budget::BudgetDuration::Days(30))
    );
    assert_eq!(budget.alert_webhooks.len(), 3);
    assert_eq!(budget.alert_thresholds_percent, vec![50, 90]);
    assert_eq!(budget.keys.len(), 1);
    assert_eq!(budget.keys[0].key.expose(), "sk-app-0123456789");
    assert_eq!(budget.keys[0].max_budget, Some(5.0));
}

#[test]
fn config_keys_must_look_like_keys() {
    let message = error_of("model_list: []\ngeneral_settings:\n  keys:\n    - {key: not-a-key}\n");
    assert!(
        message.starts_with("general_settings.keys[0].key:"),
        "{message}"
    );
    let message = error_of(
        "model_list: []\ngeneral_settings:\n  keys:\n    - {key: sk-abc, budget_duration: 10}\n",
    );
    assert!(message.contains("keys[0]"), "{message}");
}
