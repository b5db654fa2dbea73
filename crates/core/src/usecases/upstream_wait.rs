//! How a consumer waits on the breaker in front of BOS ([`crate::breaker`]): it publishes
//! what its own calls saw, keeps its view of the shared record fresh, holds its message while
//! the breaker is open, claims the one probe when it is due, and closes or reopens the breaker
//! on the probe's answer.
//!
//! A held message is not failed: failing it would spend a receive of `maxReceiveCount`, and a
//! long outage would send healthy chunks to the dead-letter queue. It is held in the
//! invocation (looking at the record every [`POLL_OPEN`]) and, when the invocation's time runs
//! out, sent again as a new message ([`crate::ports::WorkQueue::requeue`]).
//!
//! Each transition is logged once, by the consumer whose compare-and-set won it, and counted
//! (`BreakerOpened`, `BreakerProbes`, `BreakerClosed`); the template alarms on the first.

use crate::breaker::{Breaker, BreakerRecord, Health, Probe};
use crate::metrics::MetricSet;
use crate::ports::{BreakerStore, StoreError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How stale a closed view may be when a message arrives, before it hands its lane on (the
/// chunk's own round of calls reads the record afresh).
pub const REFRESH_CLOSED: Duration = Duration::from_secs(1);
/// How often a held message looks at the record: the longest a consumer lags behind a close.
pub const POLL_OPEN: Duration = Duration::from_millis(500);
/// Compare-and-set rounds before a transition gives up for this time (others are writing the
/// same record, so their view will do).
const RACES: usize = 5;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a chunk may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The breaker is closed: call BOS.
    Call,
    /// This process claimed the probe: make exactly one call.
    Probe,
    /// Still open when the invocation's time ran out: hand the message back.
    Release,
}

/// The breaker, this process's view of it and where it is stored.
#[derive(Clone, Copy)]
pub struct Upstream<'a> {
    pub breaker: &'a Breaker,
    pub store: &'a dyn BreakerStore,
}

impl Upstream<'_> {
    /// Publishes an opening this process saw, and rereads the record if the view is older
    /// than `max_age`.
    pub async fn sync(&self, max_age: Duration) -> Result<(), StoreError> {
        self.sync_from(max_age, None).await
    }

    /// [`Upstream::sync`], taking `read` (a record the caller read a moment ago) as the
    /// reread, if given.
    async fn sync_from(
        &self,
        max_age: Duration,
        read: Option<BreakerRecord>,
    ) -> Result<(), StoreError> {
        if self.publish().await? {
            return Ok(());
        }
        if let Some(record) = read {
            self.breaker.adopt_unless_older(record, Instant::now());
            return Ok(());
        }
        let stale = self
            .breaker
            .read_at()
            .is_none_or(|at| at.elapsed() >= max_age);
        if stale {
            let record = self.store.read_breaker().await?;
            self.breaker.adopt(record, Instant::now());
        }
        Ok(())
    }

    /// Publishes an opening this process saw, if any (`true`): the sooner the table knows,
    /// the fewer calls other consumers start meanwhile. What could not be written is kept
    /// for the next try.
    pub async fn publish(&self) -> Result<bool, StoreError> {
        let Some(wait) = self.breaker.take_to_open() else {
            return Ok(false);
        };
        match self.transition(|r| r.opened(now_ms(), wait)).await {
            Ok(()) => Ok(true),
            Err(e) => {
                self.breaker.keep_to_open(wait);
                Err(e)
            }
        }
    }

    /// Waits until BOS may be called, or this process holds the probe, or `until`. `read`:
    /// the record as the chunk read it with its task a moment ago, if its store did (then the
    /// first look reads nothing more).
    pub async fn ready(
        &self,
        until: Instant,
        mut read: Option<BreakerRecord>,
    ) -> Result<Ready, StoreError> {
        loop {
            match self.look(until, true, read.take()).await? {
                Look::Wait(wake) => tokio::time::sleep(wake).await,
                Look::Ready(ready) => return Ok(ready),
            }
        }
    }

    /// Waits while the breaker is open and no probe is due, or until `until`: `true` when
    /// work may start. Claims nothing: for a message that must first hand its lane on.
    pub async fn open_wait(&self, until: Instant) -> Result<bool, StoreError> {
        loop {
            match self.look(until, false, None).await? {
                Look::Wait(wake) => tokio::time::sleep(wake).await,
                Look::Ready(ready) => return Ok(ready != Ready::Release),
            }
        }
    }

    async fn look(
        &self,
        until: Instant,
        claim: bool,
        read: Option<BreakerRecord>,
    ) -> Result<Look, StoreError> {
        // A round of calls starts from the record as it is now (one read per chunk, with the
        // chunk's task where the store can): a view even a second old would let a consumer
        // call BOS after another heard `Retry-After`.
        let max_age = if self.breaker.is_open() {
            POLL_OPEN
        } else if claim {
            Duration::ZERO
        } else {
            REFRESH_CLOSED
        };
        self.sync_from(max_age, read).await?;
        if !self.breaker.is_open() {
            return Ok(Look::Ready(Ready::Call));
        }
        let record = self.breaker.record();
        let now = now_ms();
        if record.probe_due(now) {
            if !claim {
                return Ok(Look::Ready(Ready::Call));
            }
            if let Some(next) = record.probe_claimed(now) {
                if self.store.write_breaker(record.version, &next).await? {
                    tracing::info!(opens = next.opens, "bos breaker half-open: probing");
                    MetricSet::new().count("BreakerProbes", 1).emit();
                    self.breaker.adopt(next, Instant::now());
                    self.breaker.arm_probe();
                    return Ok(Look::Ready(Ready::Probe));
                }
            }
            // Another consumer probes: look again soon.
            let record = self.store.read_breaker().await?;
            self.breaker.adopt(record, Instant::now());
        }
        let record = self.breaker.record();
        let due = record.retry_at_ms.max(record.probe_until_ms);
        let wake = Duration::from_millis(due.saturating_sub(now_ms()))
            .clamp(Duration::from_millis(20), POLL_OPEN);
        if Instant::now() + wake >= until {
            return Ok(Look::Ready(Ready::Release));
        }
        Ok(Look::Wait(wake))
    }

    /// After a probe's one call: an answer closes the breaker, a failure reopens it (next
    /// probe after 2 s, or BOS's `Retry-After`).
    pub async fn conclude_probe(&self) -> Result<(), StoreError> {
        match self.breaker.take_probe() {
            Probe::None => Ok(()),
            Probe::Made(Some(Health::Answered)) => self.transition(BreakerRecord::closed).await,
            Probe::Made(Some(Health::Failing { retry_after })) => {
                self.transition(|r| r.reopened(now_ms(), retry_after)).await
            }
            // Claimed but never made, or made without an answer: free the slot.
            Probe::Armed | Probe::Made(None) => {
                self.breaker.disarm_probe();
                self.transition(|r| r.reopened(now_ms(), None)).await
            }
        }
    }

    /// Applies `change` to the stored record by compare-and-set, logging and counting the
    /// transition it made.
    async fn transition(
        &self,
        change: impl Fn(&BreakerRecord) -> Option<BreakerRecord>,
    ) -> Result<(), StoreError> {
        for _ in 0..RACES {
            let record = self.store.read_breaker().await?;
            let Some(next) = change(&record) else {
                self.breaker.adopt(record, Instant::now());
                return Ok(());
            };
            if self.store.write_breaker(record.version, &next).await? {
                log_transition(&record, &next);
                self.breaker.adopt(next, Instant::now());
                return Ok(());
            }
        }
        let record = self.store.read_breaker().await?;
        self.breaker.adopt(record, Instant::now());
        Ok(())
    }
}

enum Look {
    Wait(Duration),
    Ready(Ready),
}

fn log_transition(from: &BreakerRecord, to: &BreakerRecord) {
    match (from.open, to.open) {
        (false, true) => {
            let wait_ms = to.retry_at_ms.saturating_sub(to.opened_at_ms);
            tracing::warn!(
                opens = to.opens,
                wait_ms,
                "bos breaker opened: calls to BOS are held"
            );
            MetricSet::new().count("BreakerOpened", 1).emit();
        }
        (true, false) => {
            let open_ms = now_ms().saturating_sub(from.opened_at_ms);
            tracing::info!(
                opens = to.opens,
                open_ms,
                "bos breaker closed: calls resume"
            );
            MetricSet::new().count("BreakerClosed", 1).emit();
        }
        _ => tracing::debug!(retry_at_ms = to.retry_at_ms, "bos breaker stays open"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::CallGate;
    use crate::memory::MemoryStore;

    const FAIL: Health = Health::Failing { retry_after: None };

    #[tokio::test]
    async fn an_outage_seen_by_one_process_holds_another_then_a_probe_closes_it() {
        // Given two consumer processes sharing one table, and the first seeing BOS fail
        let store = MemoryStore::default();
        let (a, b) = (Breaker::default(), Breaker::default());
        let (ua, ub) = (
            Upstream {
                breaker: &a,
                store: &store,
            },
            Upstream {
                breaker: &b,
                store: &store,
            },
        );
        for i in 0..crate::breaker::TRIP_FAILURES {
            a.observe(&format!("item-{i}"), FAIL);
        }

        // When the first publishes it
        ua.sync(REFRESH_CLOSED).await.unwrap();

        // Then the second, at its next look, holds its calls until its time runs out
        let soon = Instant::now() + Duration::from_millis(300);
        assert_eq!(ub.ready(soon, None).await.unwrap(), Ready::Release);
        assert!(b.is_open() && !b.admit());

        // And once the probe is due, one of them claims it, and its answer closes the breaker
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(ub.ready(later, None).await.unwrap(), Ready::Probe);
        assert!(b.admit(), "the probe's one call");
        b.observe("probe", Health::Answered);
        ub.conclude_probe().await.unwrap();
        assert!(!store.read_breaker().await.unwrap().open);
        ua.sync(Duration::ZERO).await.unwrap();
        assert!(a.admit(), "the first process sees the close");
    }

    #[tokio::test]
    async fn a_failed_probe_reopens_for_bos_named_wait() {
        let store = MemoryStore::default();
        let b = Breaker::default();
        let up = Upstream {
            breaker: &b,
            store: &store,
        };
        let open = BreakerRecord::default().opened(0, Duration::ZERO).unwrap();
        assert!(store.write_breaker(0, &open).await.unwrap());
        let far = Instant::now() + Duration::from_secs(5);
        assert_eq!(up.ready(far, None).await.unwrap(), Ready::Probe);
        assert!(b.admit());
        b.observe(
            "probe",
            Health::Failing {
                retry_after: Some(Duration::from_secs(30)),
            },
        );
        up.conclude_probe().await.unwrap();
        let record = store.read_breaker().await.unwrap();
        assert!(record.open);
        assert!(record.retry_at_ms >= now_ms() + 29_000, "{record:?}");
    }

    /// A breaker store that counts its reads.
    #[derive(Default)]
    struct CountingReads {
        inner: MemoryStore,
        reads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl BreakerStore for CountingReads {
        async fn read_breaker(&self) -> Result<BreakerRecord, StoreError> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.read_breaker().await
        }
        async fn write_breaker(&self, seen: u64, next: &BreakerRecord) -> Result<bool, StoreError> {
            self.inner.write_breaker(seen, next).await
        }
    }

    #[tokio::test]
    async fn a_round_given_the_record_read_with_its_chunk_reads_nothing_more_and_obeys_it() {
        // Given a view that says closed, and a table where another process opened the breaker
        let store = CountingReads::default();
        let b = Breaker::default();
        let up = Upstream {
            breaker: &b,
            store: &store,
        };
        up.sync(Duration::ZERO).await.unwrap();
        let open = BreakerRecord::default()
            .opened(now_ms(), Duration::from_secs(30))
            .unwrap();
        assert!(store.write_breaker(0, &open).await.unwrap());
        let reads = store.reads.load(std::sync::atomic::Ordering::Relaxed);

        // When a chunk's first round starts from the record it read with its task
        let soon = Instant::now() + Duration::from_millis(100);
        let ready = up.ready(soon, Some(open.clone())).await.unwrap();

        // Then it holds its calls as that record says, and its first look read nothing
        assert_eq!(ready, Ready::Release);
        assert!(b.is_open() && !b.admit());
        assert_eq!(b.record(), open);
        assert_eq!(
            store.reads.load(std::sync::atomic::Ordering::Relaxed),
            reads
        );

        // And a record older than the view changes nothing
        up.ready(soon, Some(BreakerRecord::default()))
            .await
            .unwrap();
        assert_eq!(
            b.record(),
            open,
            "an older read does not replace a newer view"
        );
    }
}
