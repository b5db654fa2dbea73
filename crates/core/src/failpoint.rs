//! Crash points for fault-injection tests, armed only through environment variables that the
//! local runner's tests set; unset (always, in AWS) they cost one relaxed atomic load.
//!
//! `FAILPOINT_CRASH_AFTER_BOS_CALLS=N` with `FAILPOINT_MARKER=/path`: the process aborts right
//! after its N-th successful BOS call, before the outcome is written — the worst moment for
//! exactly-once — and leaves the marker file so that the restarted process does not crash again.
//! `FAILPOINT_CRASH_BEFORE_CHECKPOINT=N` does the same in the ingest, between its writes and
//! the checkpoint that records them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

struct Armed {
    after: usize,
    marker: PathBuf,
}

/// The point armed by the variable `count_var` (with `FAILPOINT_MARKER`), read once.
fn armed(count_var: &str, cell: &'static OnceLock<Option<Armed>>) -> Option<&'static Armed> {
    cell.get_or_init(|| {
        let after = std::env::var(count_var).ok()?.parse().ok()?;
        let marker = PathBuf::from(std::env::var("FAILPOINT_MARKER").ok()?);
        Some(Armed { after, marker })
    })
    .as_ref()
}

/// Counts a pass through the point; aborts the process at the armed pass, once.
fn pass(armed: Option<&Armed>, passes: &AtomicUsize, what: &str) {
    let Some(armed) = armed else { return };
    let count = passes.fetch_add(1, Ordering::SeqCst) + 1;
    if count >= armed.after && std::fs::File::create_new(&armed.marker).is_ok() {
        tracing::error!(count, "failpoint: crashing {what}");
        std::process::abort();
    }
}

/// Called after each successful BOS call, before its outcome is recorded.
pub fn after_bos_call() {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let armed = armed("FAILPOINT_CRASH_AFTER_BOS_CALLS", &ARMED);
    pass(armed, &CALLS, "after a BOS call, before recording it");
}

/// Called by the ingest after it wrote chunks and invalid rows, before the checkpoint that
/// records them (`FAILPOINT_CRASH_BEFORE_CHECKPOINT=N`: at the N-th such moment).
pub fn before_ingest_checkpoint() {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let armed = armed("FAILPOINT_CRASH_BEFORE_CHECKPOINT", &ARMED);
    pass(
        armed,
        &WRITES,
        "after ingest writes, before their checkpoint",
    );
}
