//! The official Python SDKs (`anthropic`, `openai`) against the real server
//! in front of fake upstreams: proof that real clients parse what the
//! gateway answers, streams included. Each SDK's script runs in a
//! `python3` child with `base_url` pointed at the gateway on 127.0.0.1.
//!
//! When `python3` or an SDK is missing the test says so on stderr and
//! passes: CI installs the SDKs when it can (`.ci/run`), but a machine
//! without them must still be able to run the suite.

#![allow(clippy::unwrap_used)]

use gateway_tests::protocols::{self, TOOL_ARGUMENTS};
use gateway_tests::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const MASTER: &str = "sk-master-sdk-0123456789abcdef0123";

/// Bounds a whole SDK script; the SDK clients also time out on their own.
const SCRIPT_PATIENCE: Duration = Duration::from_secs(120);

/// Fakes answering with one reply each, and the gateway in front of them.
struct Setup {
    _fakes: Vec<FakeUpstream>,
    gateway: TestGateway,
}

/// `chat`: an OpenAI upstream answering "Hi!"; `local`: an Ollama stream of
/// "Hello world"; `tools`: an OpenAI stream of a `get_weather` call;
/// `claude`: an Anthropic stream of "Hello world" (passthrough).
async fn setup() -> Setup {
    let chat = FakeUpstream::start(Reply::json(200, upstream_completion("Hi!"))).await;
    let local = FakeUpstream::start(protocols::ollama::text_stream(&["Hello", " world"])).await;
    let tools = FakeUpstream::start(protocols::openai::tool_stream()).await;
    let claude = FakeUpstream::start(protocols::anthropic::text_stream(&["Hello", " world"])).await;
    let config = format!(
        r#"
model_list:
  - model_name: chat
    litellm_params: {{model: openai/upstream-model, api_base: "{chat}", api_key: k}}
  - model_name: local
    litellm_params: {{model: ollama_chat/llama3.2, api_base: "{local}"}}
  - model_name: tools
    litellm_params: {{model: openai/upstream-model, api_base: "{tools}", api_key: k}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-3-5-haiku-20241022, api_base: "{claude}", api_key: k}}
router_settings: {{num_retries: 0}}
general_settings: {{master_key: os.environ/MASTER}}
"#,
        chat = chat.api_base(),
        local = local.root(),
        tools = tools.api_base(),
        claude = claude.root(),
    );
    let gateway = TestGateway::start(&config, &[("MASTER", MASTER)]).await;
    Setup {
        _fakes: vec![chat, local, tools, claude],
        gateway,
    }
}

/// True when `python3` can import `module`; says why not otherwise.
fn sdk_available(module: &str) -> bool {
    let available = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        eprintln!("skipped: `python3 -c \"import {module}\"` failed; install it with `pip install {module}` to run this test");
    }
    available
}

/// Runs a Python script with the gateway's URL and key in its environment
/// and parses the JSON it prints last.
async fn run_python(script: &'static str, gateway: &TestGateway) -> Value {
    let url = format!("http://{}", gateway.addr);
    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", script])
            .env("GATEWAY_URL", url)
            .env("GATEWAY_KEY", MASTER)
            // The SDKs must reach 127.0.0.1 directly, whatever the machine's proxy.
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("all_proxy")
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(SCRIPT_PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("the SDK script did not finish within {SCRIPT_PATIENCE:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|_| panic!("no JSON result\nstdout: {stdout}\nstderr: {stderr}"))
}

const ANTHROPIC_SCRIPT: &str = r#"
import json, os, anthropic
client = anthropic.Anthropic(base_url=os.environ["GATEWAY_URL"], api_key=os.environ["GATEWAY_KEY"], max_retries=0, timeout=30)
out = {}
hello = [{"role": "user", "content": "Say hello"}]

message = client.messages.create(model="chat", max_tokens=64, system="Be brief.", messages=hello)
out["create"] = {"text": message.content[0].text, "model": message.model, "stop_reason": message.stop_reason,
                 "usage": [message.usage.input_tokens, message.usage.output_tokens]}

for model in ["local", "claude"]:
    with client.messages.stream(model=model, max_tokens=64, messages=hello) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    out["stream_" + model] = {"text": text, "final": final.content[0].text, "stop_reason": final.stop_reason,
                              "model": final.model}

tool = {"name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}
with client.messages.stream(model="tools", max_tokens=64, messages=hello, tools=[tool]) as stream:
    partial = "".join(event.partial_json for event in stream if event.type == "input_json")
    final = stream.get_final_message()
block = final.content[0]
out["tool"] = {"type": block.type, "name": block.name, "input": block.input, "partial": partial,
               "stop_reason": final.stop_reason}

out["count"] = client.messages.count_tokens(model="chat", messages=hello).input_tokens

try:
    client.messages.create(model="no-such-model", max_tokens=64, messages=hello)
    out["error"] = None
except anthropic.NotFoundError as error:
    out["error"] = {"status": error.status_code, "type": error.body["error"]["type"]}

try:
    anthropic.Anthropic(base_url=os.environ["GATEWAY_URL"], api_key="sk-wrong-0000000000000000", max_retries=0).messages.create(
        model="chat", max_tokens=64, messages=hello)
    out["auth"] = None
except anthropic.AuthenticationError as error:
    out["auth"] = error.status_code
print(json.dumps(out))
"#;

const OPENAI_SCRIPT: &str = r#"
import json, os, openai
client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["GATEWAY_KEY"], max_retries=0, timeout=30)
out = {}
hello = [{"role": "user", "content": "Say hello"}]

completion = client.chat.completions.create(model="chat", messages=hello)
out["create"] = {"text": completion.choices[0].message.content, "model": completion.model,
                 "total": completion.usage.total_tokens}

for model in ["local", "claude"]:
    stream = client.chat.completions.create(model=model, messages=hello, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage.total_tokens
    out["stream_" + model] = {"text": text, "usage": usage}

tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
stream = client.chat.completions.create(model="tools", messages=hello, tools=[tool], stream=True)
name, arguments = None, ""
for chunk in stream:
    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
        name = call.function.name or name
        arguments += call.function.arguments or ""
out["tool"] = {"name": name, "arguments": arguments}

try:
    client.chat.completions.create(model="no-such-model", messages=hello)
    out["error"] = None
except openai.NotFoundError as error:
    out["error"] = {"status": error.status_code, "type": error.body["type"] if "type" in error.body else error.body}
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_anthropic_sdk_parses_messages_streams_tool_calls_and_errors() {
    if !sdk_available("anthropic") {
        return;
    }
    let setup = setup().await;
    let out = run_python(ANTHROPIC_SCRIPT, &setup.gateway).await;
    assert_eq!(
        out["create"],
        json!({"text": "Hi!", "model": "chat", "stop_reason": "end_turn", "usage": [9, 3]})
    );
    for model in ["local", "claude"] {
        assert_eq!(
            out[format!("stream_{model}")],
            json!({"text": "Hello world", "final": "Hello world", "stop_reason": "end_turn", "model": model}),
            "{model}"
        );
    }
    let expected_input: Value = serde_json::from_str(TOOL_ARGUMENTS).unwrap();
    assert_eq!(
        out["tool"],
        json!({"type": "tool_use", "name": "get_weather", "input": expected_input,
               "partial": TOOL_ARGUMENTS, "stop_reason": "tool_use"})
    );
    assert!(out["count"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(
        out["error"],
        json!({"status": 404, "type": "not_found_error"})
    );
    assert_eq!(out["auth"], 401);
}

#[tokio::test]
async fn the_openai_sdk_parses_completions_streams_from_every_kind_and_errors() {
    if !sdk_available("openai") {
        return;
    }
    let setup = setup().await;
    let out = run_python(OPENAI_SCRIPT, &setup.gateway).await;
    assert_eq!(
        out["create"],
        json!({"text": "Hi!", "model": "chat", "total": 12})
    );
    for model in ["local", "claude"] {
        let stream = &out[format!("stream_{model}")];
        assert_eq!(stream["text"], "Hello world", "{model}: {out}");
        assert!(stream["usage"].as_u64().unwrap() > 0, "{model}: {out}");
    }
    assert_eq!(
        out["tool"],
        json!({"name": "get_weather", "arguments": TOOL_ARGUMENTS})
    );
    assert_eq!(out["error"]["status"], 404, "{out}");
    assert_eq!(out["error"]["type"], "model_not_found", "{out}");
}
