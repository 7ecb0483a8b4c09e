//! The binary as operators run it: its request log lines (written by hand
//! when stderr is not a terminal) in both formats, the log filter, a clean
//! exit on SIGTERM, and `check`'s one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const MASTER: &str = "sk-cli-master-5d1f0b7a9e3c2468";
const PATIENCE: Duration = Duration::from_secs(20);

struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    address: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("gateway-cli-{}-{name}.yaml", std::process::id()));
    std::fs::write(
        &path,
        "model_list:\n  - model_name: cli-model\n    litellm_params: {model: mock/cli, mock_response: \"hello there\"}\ngeneral_settings:\n  master_key: os.environ/CLI_MASTER\n  disable_spend_logs: true\n",
    )
    .unwrap();
    path
}

fn start(name: &str, args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(config_file(name))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("CLI_MASTER", MASTER)
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        lines,
        seen: Vec::new(),
        address: String::new(),
    };
    let listening = running.wait_for("gateway listening");
    let start = listening.find("127.0.0.1:").expect("an address");
    running.address = listening[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    running
}

impl Running {
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; seen: {:#?}", self.seen),
            }
        }
    }

    fn chat(&self, request_id: &str) -> String {
        let body = r#"{"model":"cli-model","messages":[{"role":"user","content":"hi"}]}"#;
        let mut socket = TcpStream::connect(&self.address).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            socket,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER}\r\nx-request-id: {request_id}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// SIGTERM, then everything the process wrote until it exited.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The process closes stderr when it exits: read to that end.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("no exit after SIGTERM"),
            }
        }
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
        std::mem::take(&mut self.seen)
    }
}

#[test]
fn json_request_lines_have_tracing_s_layout_and_no_secret() {
    let mut gateway = start("json", &["--log-format", "json"]);
    let response = gateway.chat("cli-json-1");
    assert!(response.contains("hello there"), "{response}");
    let line = gateway.wait_for("cli-json-1");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(parsed["level"], "INFO");
    assert_eq!(parsed["target"], "gateway_server::observe");
    let timestamp = parsed["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), 27, "{timestamp}");
    assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T');
    let fields = &parsed["fields"];
    assert_eq!(fields["message"], "request");
    assert_eq!(fields["request_id"], "cli-json-1");
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["path"], "/v1/chat/completions");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["model"], "cli-model");
    assert_eq!(fields["provider"], "mock");
    assert_eq!(fields["attempts"], 1);
    assert!(
        fields["completion_tokens"].as_u64().unwrap() > 0,
        "{fields}"
    );
    assert!(fields["latency_ms"].as_f64().unwrap() >= 0.0, "{fields}");
    assert!(fields.get("error").is_none(), "{fields}");

    let all = gateway.stop();
    assert!(
        all.iter().any(|line| line.contains("gateway stopped")),
        "{all:#?}"
    );
    assert!(!all.iter().any(|line| line.contains(MASTER)), "{all:#?}");
    // One line per request.
    assert_eq!(
        all.iter()
            .filter(|line| line.contains("cli-json-1"))
            .count(),
        1
    );
}

#[test]
fn text_request_lines_match_tracing_s_default_format() {
    let mut gateway = start("text", &[]);
    gateway.chat("cli-text-1");
    let line = gateway.wait_for("cli-text-1");
    let (timestamp, rest) = line.split_at(27);
    assert!(
        timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "{line}"
    );
    assert!(
        rest.starts_with(
            "  INFO gateway_server::observe: request request_id=cli-text-1 method=POST \
             path=/v1/chat/completions status=200 key_alias=\"\" team=\"\" \
             model=\"cli-model\" deployment=\""
        ),
        "{line}"
    );
    assert!(rest.contains(" provider=\"mock\" attempts=1 retries=0 fallbacks=0 "));
    assert!(rest.contains(" latency_ms="), "{line}");
    assert!(
        !line.contains('\u{1b}'),
        "no colours off a terminal: {line:?}"
    );
    gateway.stop();
}

#[test]
fn the_log_level_filters_request_lines() {
    // Info for the rest (the listening line), warn for request lines.
    let gateway = start(
        "filtered",
        &["--log-level", "info,gateway_server::observe=warn"],
    );
    gateway.chat("cli-filtered-1");
    let all = gateway.stop();
    assert!(
        !all.iter().any(|line| line.contains("cli-filtered-1")),
        "{all:#?}"
    );
}

#[test]
fn check_reports_a_bad_config_in_one_line() {
    let path = std::env::temp_dir().join(format!("gateway-cli-{}-bad.yaml", std::process::id()));
    std::fs::write(
        &path,
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, api_key: os.environ/CLI_UNSET_VARIABLE}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&path)
        .arg("check")
        .env_remove("CLI_UNSET_VARIABLE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("CLI_UNSET_VARIABLE"), "{stderr}");
}
