//! Crash points for fault-injection tests, armed only through environment variables that the
//! local runner's tests set; unset (always, in AWS) they cost one relaxed atomic load.
//!
//! `FAILPOINT_CRASH_AFTER_BOS_CALLS=N` with `FAILPOINT_MARKER=/path`: the process aborts right
//! after its N-th successful BOS call, before the outcome is written — the worst moment for
//! exactly-once — and leaves the marker file so that the restarted process does not crash again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

struct Armed {
    after_calls: usize,
    marker: PathBuf,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let after_calls = std::env::var("FAILPOINT_CRASH_AFTER_BOS_CALLS")
                .ok()?
                .parse()
                .ok()?;
            let marker = PathBuf::from(std::env::var("FAILPOINT_MARKER").ok()?);
            Some(Armed {
                after_calls,
                marker,
            })
        })
        .as_ref()
}

/// Called after each successful BOS call, before its outcome is recorded.
pub fn after_bos_call() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let Some(armed) = armed() else { return };
    let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if calls >= armed.after_calls && std::fs::File::create_new(&armed.marker).is_ok() {
        tracing::error!(
            calls,
            "failpoint: crashing after a BOS call, before recording it"
        );
        std::process::abort();
    }
}
