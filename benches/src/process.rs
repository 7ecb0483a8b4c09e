//! The gateway under test as a child process, and what `/proc` says about
//! it: CPU time, resident memory.
//!
//! The child is killed when its [`GatewayProcess`] is dropped, so an error or
//! a panic anywhere in the benchmark never leaves a gateway running. It stays
//! in the benchmark's process group, so Ctrl-C in a terminal reaches it too.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the gateway under test.
#[derive(Debug, Clone)]
pub enum Launch {
    /// This project's `gateway` binary.
    Binary {
        /// The executable.
        path: PathBuf,
        /// Its `--log-level`.
        log_level: String,
        /// A command that runs it, e.g. `valgrind --tool=callgrind …`;
        /// empty to run it directly.
        wrapper: Vec<String>,
    },
    /// Any command line, run by `sh -c`, with `{port}` and `{config}`
    /// replaced (e.g. `litellm --config {config} --port {port}`).
    Shell(String),
}

/// A running gateway, killed on drop.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its stdout and stderr.
    pub log_path: PathBuf,
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size so far.
    pub peak_kib: u64,
}

impl GatewayProcess {
    /// Starts the gateway on a free port of 127.0.0.1 with `config`, its
    /// output going to `log_path`.
    pub fn spawn(launch: &Launch, config: &Path, log_path: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = match launch {
            Launch::Binary {
                path,
                log_level,
                wrapper,
            } => {
                if !path.is_file() {
                    bail!(
                        "no gateway binary at {}: build it with `cargo build --release -p gateway` or pass --gateway-bin",
                        path.display()
                    );
                }
                let mut command = match wrapper.split_first() {
                    Some((program, args)) => {
                        let mut command = Command::new(program);
                        command.args(args).arg(path);
                        command
                    }
                    None => Command::new(path),
                };
                command
                    .arg("--config")
                    .arg(config)
                    .arg("--host")
                    .arg("127.0.0.1")
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--log-level")
                    .arg(log_level)
                    // The benchmark decides the log level, not the caller's shell.
                    .env_remove("RUST_LOG");
                command
            }
            Launch::Shell(template) => {
                let line = template
                    .replace("{port}", &port.to_string())
                    .replace("{config}", &config.display().to_string());
                let mut command = Command::new("sh");
                // `exec` so the measured pid is the gateway, not the shell.
                command.arg("-c").arg(format!("exec {line}"));
                command
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().context("cannot start the gateway")?;
        Ok(Self {
            child,
            addr,
            log_path: log_path.to_path_buf(),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /health/liveliness` answers 200, the child exits, or
    /// `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the gateway exited during startup ({status}); its log ({}) ends with:\n{}",
                    self.log_path.display(),
                    log_tail(&self.log_path, 20)
                );
            }
            if probe_liveliness(self.addr).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the gateway did not answer /health/liveliness on {} within {timeout:?}; its log ({}) ends with:\n{}",
                    self.addr,
                    self.log_path.display(),
                    log_tail(&self.log_path, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the child runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// User plus system CPU time of the child so far, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .context("cannot read the gateway's /proc/<pid>/stat")?;
        parse_stat_cpu(&stat).context("unexpected /proc/<pid>/stat format")
    }

    /// Asks the gateway to stop (SIGTERM), so it can drain and flush, and a
    /// profiler wrapping it (`valgrind --tool=callgrind …`) can write its
    /// output; true once it has exited, false if it still runs after
    /// `timeout` (or could not be signalled).
    pub fn stop(&mut self, timeout: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        let asked = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + timeout;
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The child's resident memory now and at its peak.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("cannot read the gateway's /proc/<pid>/status")?;
        Ok(parse_status_memory(&status))
    }
}

impl Drop for GatewayProcess {
    /// Stops the gateway ([`GatewayProcess::stop`]); kills it if it has not
    /// exited 10 seconds after SIGTERM.
    fn drop(&mut self) {
        if !self.stop(Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The clock ticks per second that `/proc` CPU times count in
/// (`getconf CLK_TCK`; 100 on Linux when that cannot be run).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// CPU ticks (user + system) of this process's threads named `name`, e.g.
/// the fake upstream's runtime threads.
pub fn threads_cpu_ticks(name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| parse_stat_cpu(&stat))
        .sum()
}

/// CPU ticks (user + system) of every process whose command name starts
/// with `prefix`, by pid: e.g. a local PostgreSQL server and its backends,
/// which all run as `postgres`.
pub fn processes_cpu_ticks(prefix: &str) -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            if !comm.starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parse_stat_cpu(&stat)?))
        })
        .collect()
}

/// Ticks spent between two [`processes_cpu_ticks`] snapshots: each process's
/// growth, and the whole count of one that started in between. A process
/// that exited in between is lost (its ticks left `/proc` with it).
pub fn ticks_since(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, ticks)| ticks.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

/// Whether a PostgreSQL URL names this machine (so its server's processes
/// are the ones `/proc` shows): host `127.0.0.1`, `localhost`, `[::1]`, or
/// none (the local socket).
pub fn is_local_database(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    matches!(host, "" | "127.0.0.1" | "localhost" | "::1")
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted from the last `)`.
/// The fields of `/proc/<pid>/stat` after the command name (which may hold
/// spaces and parentheses, and ends at the last `)`): state (field 3) first.
fn stat_fields(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace())
}

fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let mut fields = stat_fields(stat)?;
    // utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_memory(status: &str) -> Memory {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One `GET /health/liveliness` over a fresh connection, with short timeouts.
fn probe_liveliness(addr: SocketAddr) -> anyhow::Result<bool> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(
        b"GET /health/liveliness HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_fields_after_the_command_name() {
        let stat = "1234 (tokio (worker) 1) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat_cpu(stat), Some(325));
    }

    #[test]
    fn status_memory_reads_rss_and_peak() {
        let status = "Name:\tgateway\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        let memory = parse_status_memory(status);
        assert_eq!((memory.rss_kib, memory.peak_kib), (10240, 20480));
    }

    #[test]
    fn ticks_since_counts_growth_and_new_processes_but_not_exited_ones() {
        let before = HashMap::from([(10, 100), (11, 50), (12, 7)]);
        // 10 grew by 5, 11 did not change, 12 exited, 13 started.
        let after = HashMap::from([(10, 105), (11, 50), (13, 4)]);
        assert_eq!(ticks_since(&before, &after), 9);
    }

    #[test]
    fn local_database_urls_are_recognised() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/gateway_bench",
            "postgresql://user:secret@localhost/db",
            "postgres://[::1]:5432/db",
            "postgres:///db?host=/var/run/postgresql",
        ] {
            assert!(is_local_database(url), "{url}");
        }
        for url in [
            "postgres://postgres@db.internal:5432/gateway_bench",
            "postgres://user:127.0.0.1@10.0.0.5/db",
        ] {
            assert!(!is_local_database(url), "{url}");
        }
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        assert!(parse_stat_cpu(&stat).is_some());
    }

    /// A child that is no gateway at all: stop and drop only signal it.
    fn sleeper(dir: &Path) -> GatewayProcess {
        let spawned = GatewayProcess::spawn(
            &Launch::Shell("sleep 30".to_owned()),
            &dir.join("unused.yaml"),
            &dir.join("sleeper.log"),
        );
        spawned.unwrap_or_else(|error| panic!("spawn sleep: {error:#}"))
    }

    /// Waits until `/proc/<pid>/stat` shows `state`; false after `timeout`.
    fn wait_for_state(pid: &str, state: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let now = stat_fields(&stat).and_then(|mut fields| fields.next());
            if now == Some(state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gateway-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("{error}"));
        dir
    }

    #[test]
    fn a_wrapper_runs_the_binary_with_its_arguments() {
        let dir = scratch_dir("wrapper");
        let config = dir.join("gateway.yaml");
        let log = dir.join("wrapped.log");
        let launch = Launch::Binary {
            path: PathBuf::from("/bin/true"),
            log_level: "warn".to_owned(),
            // Prints the command line it was given instead of running it.
            wrapper: ["sh", "-c", r#"echo "$@""#, "sh"]
                .map(str::to_owned)
                .to_vec(),
        };
        let mut child = GatewayProcess::spawn(&launch, &config, &log)
            .unwrap_or_else(|error| panic!("spawn: {error:#}"));
        let exited = child.child.wait();
        assert!(exited.is_ok_and(|status| status.success()));
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let port = child.addr.port();
        assert_eq!(
            output.lines().next(),
            Some(
                format!(
                    "/bin/true --config {} --host 127.0.0.1 --port {port} --log-level warn",
                    config.display()
                )
                .as_str()
            )
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stop_is_true_once_the_child_exited_on_sigterm() {
        let dir = scratch_dir("stop");
        let mut child = sleeper(&dir);
        assert!(child.is_running());
        assert!(child.stop(Duration::from_secs(10)));
        assert!(!child.is_running());
        // Stopping again finds it gone, without signalling a reused pid.
        assert!(child.stop(Duration::ZERO));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_child_that_outlives_sigterm_is_not_stopped() {
        let dir = scratch_dir("pending");
        let mut child = sleeper(&dir);
        let pid = child.pid().to_string();
        let signal = |name: &str| {
            let sent = Command::new("kill").args([name, &pid]).status();
            assert!(sent.is_ok_and(|status| status.success()), "kill {name}");
        };
        // A stopped process keeps SIGTERM pending: it cannot exit on it.
        // Wait until it has stopped: while SIGSTOP is still pending, a
        // SIGTERM sent after it is taken first (lower number) and kills it.
        signal("-STOP");
        assert!(
            wait_for_state(&pid, "T", Duration::from_secs(10)),
            "never stopped"
        );
        assert!(!child.stop(Duration::from_millis(200)));
        assert!(child.is_running());
        // Continued, it takes the pending SIGTERM.
        signal("-CONT");
        assert!(child.stop(Duration::from_secs(10)));
        drop(child);
        // Dropped means reaped: the pid is gone.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
