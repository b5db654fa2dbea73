//! The circuit breaker in front of BOS, shared by every consumer (Release It!'s pattern, as
//! resilience4j and Polly implement it): when BOS fails, stop calling it, probe it once in a
//! while, and resume when a probe gets an answer. An outage then makes work *wait*, not fail,
//! and BOS recovers without a retry storm.
//!
//! Two halves:
//! - [`BreakerRecord`] is the shared state, one record in the table, changed only by
//!   compare-and-set on its `version` ([`crate::ports::BreakerStore`]). Its transitions are the
//!   pure functions below: open, claim the one probe, close, reopen.
//! - [`Breaker`] is one process's view of it, and the [`CallGate`] the BOS client asks before
//!   every attempt and tells after it. The gate answers from memory (no table read per call);
//!   `usecases::upstream_wait` publishes what it saw and refreshes the view.
//!
//! When it opens (the rate is argued in docs/decisions.md): of a process's last
//! [`WINDOW`] BOS attempts, [`TRIP_FAILURES`] or more failed for an upstream reason (5xx, 429,
//! a time-out, no connection), for at least [`TRIP_ITEMS`] different items; or BOS named a wait
//! (`Retry-After` on a 429 or 503), which is honoured as given. A flaky BOS failing 30 % of
//! calls almost never trips it (P ≈ 5·10⁻⁶ per window), an outage trips it within a round of
//! calls, and one item BOS always fails (a poison item, retried on its own) never does.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// BOS attempts one process remembers to decide whether BOS is failing.
pub const WINDOW: usize = 20;
/// Failed attempts among the last [`WINDOW`] that open the breaker.
pub const TRIP_FAILURES: usize = 16;
/// Different items those failures must be for: one item's retries are not an outage.
pub const TRIP_ITEMS: usize = 2;
/// The least time between two probes (the "at most one every 2 s").
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a claimed probe keeps others from probing: longer than one BOS attempt may take
/// (5 s request time-out), so a prober that died frees the slot soon after.
pub const PROBE_LEASE: Duration = Duration::from_secs(15);

/// What one BOS attempt said about BOS's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// BOS answered: a creation, a rejection, a verdict. Whatever the item's fate, BOS is up.
    Answered,
    /// An upstream failure; `retry_after` is the wait BOS named, if any.
    Failing { retry_after: Option<Duration> },
}

/// What the BOS client asks before an attempt and tells after it. Answers come from memory:
/// cheap enough for every attempt.
pub trait CallGate: Send + Sync {
    /// Whether an attempt may start now.
    fn admit(&self) -> bool;
    /// What an attempt's answer said; `call` names the item (its idempotency key).
    fn observe(&self, call: &str, health: Health);
}

/// A gate that always admits: the sync endpoint's, which answers its caller itself.
pub struct AlwaysOpen;

impl CallGate for AlwaysOpen {
    fn admit(&self) -> bool {
        true
    }
    fn observe(&self, _: &str, _: Health) {}
}

/// The shared state, as stored. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerRecord {
    pub open: bool,
    /// While open: no probe before this.
    pub retry_at_ms: u64,
    /// While a probe is out: nobody else probes before this.
    pub probe_until_ms: u64,
    pub opened_at_ms: u64,
    /// How many times it opened, ever (a generation, for logs).
    pub opens: u64,
    /// Compare-and-set version; 0 is "never written".
    pub version: u64,
}

impl BreakerRecord {
    fn next(&self) -> Self {
        Self {
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// Opens it, or, already open, pushes the next probe back to honour a longer wait BOS
    /// named. `None` when nothing would change.
    pub fn opened(&self, now_ms: u64, wait: Duration) -> Option<Self> {
        let retry_at_ms = now_ms + wait.max(PROBE_INTERVAL).as_millis() as u64;
        if self.open {
            return (retry_at_ms > self.retry_at_ms).then(|| Self {
                retry_at_ms,
                ..self.next()
            });
        }
        Some(Self {
            open: true,
            retry_at_ms,
            probe_until_ms: 0,
            opened_at_ms: now_ms,
            opens: self.opens + 1,
            ..self.next()
        })
    }

    /// Whether a probe may be claimed now.
    pub fn probe_due(&self, now_ms: u64) -> bool {
        self.open && self.retry_at_ms <= now_ms && self.probe_until_ms <= now_ms
    }

    /// Claims the one probe (half-open). `None` if it is not due.
    pub fn probe_claimed(&self, now_ms: u64) -> Option<Self> {
        self.probe_due(now_ms).then(|| Self {
            probe_until_ms: now_ms + PROBE_LEASE.as_millis() as u64,
            ..self.next()
        })
    }

    /// The probe got an answer: closed.
    pub fn closed(&self) -> Option<Self> {
        self.open.then(|| Self {
            open: false,
            retry_at_ms: 0,
            probe_until_ms: 0,
            ..self.next()
        })
    }

    /// The probe failed: open again, next probe after [`PROBE_INTERVAL`] or BOS's wait.
    pub fn reopened(&self, now_ms: u64, wait: Option<Duration>) -> Option<Self> {
        let wait = wait.unwrap_or(PROBE_INTERVAL).max(PROBE_INTERVAL);
        self.open.then(|| Self {
            retry_at_ms: now_ms + wait.as_millis() as u64,
            probe_until_ms: 0,
            ..self.next()
        })
    }
}

/// One process's view of the breaker, shared by every invocation the process serves.
#[derive(Default)]
pub struct Breaker {
    local: Mutex<Local>,
}

#[derive(Default)]
struct Local {
    /// The record as last read or written.
    record: BreakerRecord,
    read_at: Option<Instant>,
    /// Recent attempts, newest last: whether each failed, and a hash of its item.
    window: VecDeque<(bool, u64)>,
    /// Seen here, not yet in the table: BOS is failing, open for at least this long.
    to_open: Option<Duration>,
    probe: Probe,
}

/// The one probe this process may make, when it claimed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Probe {
    #[default]
    None,
    /// Claimed: the next attempt is admitted.
    Armed,
    /// Made; its answer once it came.
    Made(Option<Health>),
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether calls are held: open in the table, or failing here and not yet published.
    pub fn is_open(&self) -> bool {
        let l = self.lock();
        l.record.open || l.to_open.is_some()
    }

    /// The record as this process last knew it.
    pub fn record(&self) -> BreakerRecord {
        self.lock().record.clone()
    }

    /// When the view was last read from the table.
    pub fn read_at(&self) -> Option<Instant> {
        self.lock().read_at
    }

    /// Takes what the table says. A record closed by someone else's probe clears what this
    /// process saw before, so old failures do not reopen it at once.
    pub fn adopt(&self, record: BreakerRecord, now: Instant) {
        self.adopt_if(record, now, |_| true);
    }

    /// [`Breaker::adopt`], unless this view is already at a later version: another message
    /// of this process read or wrote the record after `record` was read.
    pub fn adopt_unless_older(&self, record: BreakerRecord, now: Instant) {
        let version = record.version;
        self.adopt_if(record, now, |view| view.version <= version);
    }

    fn adopt_if(
        &self,
        record: BreakerRecord,
        now: Instant,
        wanted: impl Fn(&BreakerRecord) -> bool,
    ) {
        let mut l = self.lock();
        if !wanted(&l.record) {
            return;
        }
        if l.record.open && !record.open {
            l.window.clear();
            l.to_open = None;
        }
        l.record = record;
        l.read_at = Some(now);
    }

    /// The failure seen here that the table does not know yet, taken to be published.
    pub fn take_to_open(&self) -> Option<Duration> {
        self.lock().to_open.take()
    }

    /// Puts back an opening that could not be published.
    pub fn keep_to_open(&self, wait: Duration) {
        let mut l = self.lock();
        l.to_open = Some(l.to_open.map_or(wait, |w| w.max(wait)));
    }

    /// Arms the probe this process claimed.
    pub fn arm_probe(&self) {
        self.lock().probe = Probe::Armed;
    }

    /// The probe's state, reset to none if it was made.
    pub fn take_probe(&self) -> Probe {
        let mut l = self.lock();
        match l.probe {
            Probe::Made(_) => std::mem::take(&mut l.probe),
            other => other,
        }
    }

    /// Disarms a probe that was claimed but never made (no item was left to make it with).
    pub fn disarm_probe(&self) {
        self.lock().probe = Probe::None;
    }
}

impl CallGate for Breaker {
    fn admit(&self) -> bool {
        let mut l = self.lock();
        if l.probe == Probe::Armed {
            l.probe = Probe::Made(None);
            return true;
        }
        !(l.record.open || l.to_open.is_some() || matches!(l.probe, Probe::Made(_)))
    }

    fn observe(&self, call: &str, health: Health) {
        let item = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            call.hash(&mut h);
            h.finish()
        };
        let mut l = self.lock();
        if l.probe == Probe::Made(None) {
            l.probe = Probe::Made(Some(health));
            return;
        }
        if l.window.len() == WINDOW {
            l.window.pop_front();
        }
        let failing = matches!(health, Health::Failing { .. });
        l.window.push_back((failing, item));
        let named = match health {
            Health::Failing {
                retry_after: Some(wait),
            } if !wait.is_zero() => Some(wait),
            _ => None,
        };
        let failed: Vec<u64> = l
            .window
            .iter()
            .filter(|(f, _)| *f)
            .map(|(_, i)| *i)
            .collect();
        let items: std::collections::HashSet<&u64> = failed.iter().collect();
        let tripped = failed.len() >= TRIP_FAILURES && items.len() >= TRIP_ITEMS;
        if named.is_some() || tripped {
            let wait = named.unwrap_or(PROBE_INTERVAL);
            l.to_open = Some(l.to_open.map_or(wait, |w| w.max(wait)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Health = Health::Failing { retry_after: None };

    #[test]
    fn a_record_goes_round_open_probe_reopen_close() {
        let closed = BreakerRecord::default();
        assert!(
            closed.closed().is_none(),
            "closing a closed breaker changes nothing"
        );
        let open = closed.opened(1_000, Duration::ZERO).unwrap();
        assert!(open.open && open.opens == 1 && open.version == 1);
        assert_eq!(open.retry_at_ms, 3_000, "the first probe after 2 s");
        assert!(open.probe_claimed(2_999).is_none());
        let probing = open.probe_claimed(3_000).unwrap();
        assert!(
            probing.probe_claimed(3_001).is_none(),
            "one probe at a time"
        );
        let again = probing.reopened(3_100, None).unwrap();
        assert_eq!((again.retry_at_ms, again.probe_until_ms), (5_100, 0));
        let later = again
            .reopened(3_100, Some(Duration::from_secs(30)))
            .unwrap();
        assert_eq!(later.retry_at_ms, 33_100, "BOS's Retry-After is honoured");
        let shut = later.closed().unwrap();
        assert!(!shut.open && shut.opens == 1 && shut.version == later.version + 1);
    }

    #[test]
    fn a_longer_wait_named_while_open_pushes_the_probe_back() {
        let open = BreakerRecord::default()
            .opened(0, Duration::from_secs(5))
            .unwrap();
        assert_eq!(open.retry_at_ms, 5_000);
        assert!(open.opened(1_000, Duration::from_secs(1)).is_none());
        assert_eq!(
            open.opened(1_000, Duration::from_secs(5))
                .unwrap()
                .retry_at_ms,
            6_000
        );
    }

    #[test]
    fn the_gate_trips_on_a_failing_window_not_on_a_flaky_one() {
        let b = Breaker::default();
        // 30 % failures, evenly spread: never 16 of 20.
        for i in 0..200 {
            b.observe(
                &format!("k{i}"),
                if i % 10 < 3 { FAIL } else { Health::Answered },
            );
        }
        assert!(b.admit() && !b.is_open());
        for i in 0..TRIP_FAILURES {
            b.observe(&format!("item-{i}"), FAIL);
        }
        assert!(!b.admit(), "16 failures of the last 20 hold calls");
        assert_eq!(b.take_to_open(), Some(PROBE_INTERVAL));
    }

    #[test]
    fn one_item_failing_again_and_again_is_not_an_outage() {
        let b = Breaker::default();
        for _ in 0..WINDOW {
            b.observe("poison", FAIL);
        }
        assert!(b.admit() && b.take_to_open().is_none());
        b.observe("another", FAIL);
        assert!(!b.admit(), "a second item failing too is");
    }

    #[test]
    fn a_named_wait_holds_calls_at_once() {
        let b = Breaker::default();
        b.observe(
            "k",
            Health::Failing {
                retry_after: Some(Duration::from_secs(5)),
            },
        );
        assert!(!b.admit());
        assert_eq!(b.take_to_open(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn an_armed_probe_admits_exactly_one_attempt_and_keeps_its_answer() {
        let b = Breaker::default();
        b.adopt(
            BreakerRecord::default().opened(0, Duration::ZERO).unwrap(),
            Instant::now(),
        );
        assert!(!b.admit());
        b.arm_probe();
        assert!(b.admit());
        assert!(!b.admit(), "a retry within the probe is refused");
        b.observe("probe", FAIL);
        assert_eq!(b.take_probe(), Probe::Made(Some(FAIL)));
        assert_eq!(b.take_probe(), Probe::None);
        assert!(
            b.take_to_open().is_none(),
            "a probe's answer is not the window's"
        );
    }

    #[test]
    fn a_close_seen_in_the_table_forgets_old_failures() {
        let b = Breaker::default();
        let open = BreakerRecord::default().opened(0, Duration::ZERO).unwrap();
        b.adopt(open.clone(), Instant::now());
        for i in 0..TRIP_FAILURES - 1 {
            b.observe(&format!("item-{i}"), FAIL);
        }
        b.adopt(open.closed().unwrap(), Instant::now());
        b.observe("after", FAIL);
        assert!(b.admit(), "one failure after the close does not reopen it");
    }
}
