//! A TCP relay in front of PostgreSQL that tests cut and restore, to play a
//! database outage. Used by the store's tests and, included by path, by the
//! end-to-end tests in `tests/` (the store's tests cannot depend on those).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// The test database URL, when `GATEWAY_TEST_DATABASE_URL` is set.
pub fn postgres_url() -> Option<String> {
    std::env::var("GATEWAY_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Forwards connections to the database until cut.
#[derive(Debug)]
pub struct Relay {
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept_task: AbortHandle,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("bind: {error}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => panic!("local_addr: {error}"),
        };
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (task_open, task_connections) = (Arc::clone(&open), Arc::clone(&connections));
        let accept_task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !task_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    continue;
                };
                let forward = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                });
                let mut list = task_connections.lock().unwrap_or_else(|p| p.into_inner());
                list.push(forward.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            address,
            open,
            connections,
            accept_task,
        }
    }

    /// Refuses new connections and breaks the open ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut list = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for connection in list.drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept_task.abort();
    }
}

fn parse(url: &str) -> tokio_postgres::Config {
    match url.parse() {
        Ok(config) => config,
        Err(error) => panic!("GATEWAY_TEST_DATABASE_URL: {error}"),
    }
}

/// The database's TCP address.
pub fn target_of(url: &str) -> SocketAddr {
    let config = parse(url);
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let target = match std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(target) => target,
        None => panic!("cannot resolve the database host"),
    };
    target
}

/// A key=value connection string for the same database through `address`.
pub fn through(url: &str, address: SocketAddr) -> String {
    let config = parse(url);
    let mut relayed = format!("host={} port={}", address.ip(), address.port());
    if let Some(user) = config.get_user() {
        relayed.push_str(&format!(" user='{user}'"));
    }
    if let Some(password) = config.get_password() {
        relayed.push_str(&format!(
            " password='{}'",
            String::from_utf8_lossy(password)
        ));
    }
    if let Some(dbname) = config.get_dbname() {
        relayed.push_str(&format!(" dbname='{dbname}'"));
    }
    relayed
}
