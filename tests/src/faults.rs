//! Fault injectors for the end-to-end tests: a TCP proxy that can be switched off (a service
//! that stops answering), and a DynamoDB Local of a test's own that can be stopped and started
//! again on the same port with its data on disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards loopback TCP to `target` while up; while down, refuses new connections (closes
/// them at once) and cuts the open ones.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    down: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (down, watcher) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if *watcher.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut watcher = watcher.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watcher.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Self { addr, down, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The port part of `http://127.0.0.1:PORT`.
pub fn socket_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("http://host:port")
}

/// A DynamoDB Local for one test, on disk so that it can be restarted without losing data.
pub struct OwnDynamoDb {
    pub port: u16,
    jar_dir: PathBuf,
    data_dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl OwnDynamoDb {
    /// Needs `DYNAMODB_LOCAL_DIR` (the folder of `DynamoDBLocal.jar`), which `scripts/test` sets.
    pub async fn start(data_dir: PathBuf) -> Self {
        let jar_dir =
            PathBuf::from(std::env::var("DYNAMODB_LOCAL_DIR").expect(
                "DYNAMODB_LOCAL_DIR must name DynamoDB Local's folder (scripts/test sets it)",
            ));
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let mut db = Self {
            port,
            jar_dir,
            data_dir,
            child: None,
        };
        db.up().await;
        db
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server and waits (bounded) until it accepts connections.
    pub async fn up(&mut self) {
        let child = tokio::process::Command::new("java")
            .current_dir(&self.jar_dir)
            .arg("-Djava.library.path=./DynamoDBLocal_lib")
            .args([
                "-jar",
                "DynamoDBLocal.jar",
                "-port",
                &self.port.to_string(),
                "-disableTelemetry",
                "-dbPath",
            ])
            .arg(&self.data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("java");
        self.child = Some(child);
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("DynamoDB Local did not start on port {}", self.port);
    }

    /// Stops the server; its data stays on disk.
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// Shared, so a test can hold the proxy while the stack runs.
pub type SharedProxy = Arc<FaultyProxy>;
