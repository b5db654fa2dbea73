//! Running a function locally the way Lambda does: its real release or debug binary, as a
//! separate process with Lambda's environment, talking to its own Runtime API. A pool keeps
//! N such processes (Lambda's concurrency); a crashed process fails only the invocation it
//! held and is restarted; an invocation past the function's timeout kills the process.

use crate::runtime_api::{Invocation, RuntimeApi};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function returned an error: {0}")]
    Function(String),
    #[error("the function process exited during the invocation: {0}")]
    Crashed(String),
    #[error("the function timed out")]
    Timeout,
}

#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub binary: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    pub concurrency: usize,
    /// Where the processes' stdout/stderr go; `None` inherits the gateway's.
    pub log_file: Option<PathBuf>,
}

struct Instance {
    runtime: RuntimeApi,
    kill: Notify,
    /// The running process, 0 between two processes.
    pid: AtomicU32,
}

pub struct FunctionPool {
    config: FunctionConfig,
    instances: Vec<Arc<Instance>>,
    idle_tx: mpsc::UnboundedSender<usize>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<usize>>,
    shutdown: Arc<Notify>,
}

impl FunctionPool {
    pub async fn start(config: FunctionConfig) -> std::io::Result<Arc<Self>> {
        if !config.binary.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "function binary {} not found: build the workspace first",
                    config.binary.display()
                ),
            ));
        }
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let shutdown = Arc::new(Notify::new());
        let mut instances = Vec::new();
        for i in 0..config.concurrency.max(1) {
            let instance = Arc::new(Instance {
                runtime: RuntimeApi::start(&config.name).await?,
                kill: Notify::new(),
                pid: AtomicU32::new(0),
            });
            tokio::spawn(supervise(
                config.clone(),
                i,
                Arc::clone(&instance),
                Arc::clone(&shutdown),
            ));
            instances.push(instance);
            let _ = idle_tx.send(i);
        }
        Ok(Arc::new(Self {
            config,
            instances,
            idle_tx,
            idle_rx: Mutex::new(idle_rx),
            shutdown,
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Invokes one free process of the pool, waiting for one if all are busy.
    pub async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, InvokeError> {
        let index = {
            let mut rx = self.idle_rx.lock().await;
            rx.recv()
                .await
                .ok_or_else(|| InvokeError::Crashed("pool closed".into()))?
        };
        let instance = &self.instances[index];
        let (reply, answer) = oneshot::channel();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let invocation = Invocation {
            id: uuid::Uuid::new_v4().to_string(),
            payload,
            deadline_ms: now_ms + self.config.timeout.as_millis() as u64,
            reply,
        };
        let result = if instance.runtime.submit.send(invocation).await.is_err() {
            Err(InvokeError::Crashed("runtime API closed".into()))
        } else {
            match tokio::time::timeout(self.config.timeout, answer).await {
                Ok(Ok(Ok(body))) => Ok(body),
                Ok(Ok(Err(error))) => Err(InvokeError::Function(error)),
                Ok(Err(_)) => Err(InvokeError::Crashed("no answer".into())),
                Err(_) => {
                    // Lambda ends a timed-out invocation by stopping the execution environment.
                    instance.kill.notify_one();
                    Err(InvokeError::Timeout)
                }
            }
        };
        let _ = self.idle_tx.send(index);
        result
    }

    /// The process ids running now, for measurements (peak memory).
    pub fn pids(&self) -> Vec<u32> {
        self.instances
            .iter()
            .map(|i| i.pid.load(Ordering::SeqCst))
            .filter(|p| *p != 0)
            .collect()
    }

    /// Stops every process of the pool.
    pub fn stop(&self) {
        self.shutdown.notify_waiters();
    }
}

impl Drop for FunctionPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps one process of the pool alive: starts it, waits for it to exit or be killed, fails
/// what it held, starts it again.
async fn supervise(
    config: FunctionConfig,
    index: usize,
    instance: Arc<Instance>,
    shutdown: Arc<Notify>,
) {
    let mut restarts = 0u32;
    loop {
        let mut cmd = Command::new(&config.binary);
        cmd.env_clear()
            .envs(&config.environment)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", instance.runtime.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/{index}/{restarts}"),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &config.log_file {
            Some(path) => {
                let open = || {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                };
                match (open(), open()) {
                    (Ok(out), Ok(err)) => {
                        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
                    }
                    _ => {
                        tracing::error!(path = %path.display(), "cannot open the function log file")
                    }
                }
            }
            None => {
                cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(function = %config.name, error = %e, "cannot start the function");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        instance
            .pid
            .store(child.id().unwrap_or(0), Ordering::SeqCst);
        let why = tokio::select! {
            status = child.wait() => format!("exited with {}", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())),
            _ = instance.kill.notified() => {
                let _ = child.kill().await;
                "killed after its timeout".to_owned()
            }
            _ = shutdown.notified() => {
                let _ = child.kill().await;
                instance.runtime.fail_in_flight("the local stack is stopping");
                return;
            }
        };
        instance.pid.store(0, Ordering::SeqCst);
        tracing::warn!(function = %config.name, instance = index, reason = %why, "function process ended; restarting");
        instance.runtime.fail_in_flight(&why);
        restarts += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
