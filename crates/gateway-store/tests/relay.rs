//! The spend writer keeps rows while PostgreSQL is unreachable and delivers
//! them once it is back. A TCP relay in front of the database is cut and
//! restored. Skipped (with a note) when GATEWAY_TEST_DATABASE_URL is unset.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use gateway_budget::{BudgetStore, SpendLogQuery, StoreError};
use gateway_store::{PostgresConfig, PostgresStore, SpendWriter, SpendWriterConfig};

use support::{row, unique_name, DAY0};

/// Forwards connections to the database until cut.
struct Relay {
    address: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept_task: AbortHandle,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
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
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut list = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        for connection in list.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
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
fn target_of(url: &str) -> SocketAddr {
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
fn through(url: &str, address: SocketAddr) -> String {
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

async fn connect(url: String, schema: &str) -> PostgresStore {
    let mut config = PostgresConfig::new(url);
    config.schema = Some(schema.to_owned());
    config.max_connections = 2;
    config.connect_timeout = Duration::from_secs(5);
    match PostgresStore::connect_with(config).await {
        Ok(store) => store,
        Err(error) => panic!("connect: {error}"),
    }
}

#[tokio::test]
async fn writer_keeps_rows_while_postgres_is_unreachable_and_delivers_them_after() {
    let Some(url) = support::postgres_url() else {
        eprintln!("GATEWAY_TEST_DATABASE_URL is not set; skipping the PostgreSQL outage test");
        return;
    };
    let relay = Relay::start(target_of(&url)).await;
    let relayed_url = through(&url, relay.address);
    let schema = unique_name("gw_test");
    let direct = connect(url.clone(), &schema).await;
    let store = Arc::new(connect(relayed_url, &schema).await);
    let writer = SpendWriter::start(
        store.clone(),
        None,
        SpendWriterConfig {
            batch_interval: Duration::from_secs(3_600),
            ..SpendWriterConfig::default()
        },
    );

    relay.cut();
    for i in 0..5 {
        assert!(writer.handle().submit(row(
            &format!("outage-{i}"),
            "sk-a",
            Some("t1"),
            "gpt-4o",
            DAY0,
            10
        )));
    }
    assert!(matches!(
        writer.handle().flush().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.ping().await.is_err());
    assert_eq!(writer.stats().buffered(), 5);
    assert!(writer.stats().flush_failures() >= 1);

    relay.restore();
    let mut delivered = Err(StoreError::NotFound);
    for _ in 0..10 {
        // A pooled connection broken by the cut may fail once more.
        delivered = writer.handle().flush().await;
        if delivered.is_ok() {
            break;
        }
    }
    assert_eq!(delivered, Ok(5));
    let stored = match direct.query_spend_logs(&SpendLogQuery::default()).await {
        Ok(rows) => rows,
        Err(error) => panic!("query: {error}"),
    };
    assert_eq!(stored.len(), 5);
    assert_eq!(writer.shutdown().await, 0);
    if let Err(error) = direct.drop_schema().await {
        panic!("drop schema: {error}");
    }
}
