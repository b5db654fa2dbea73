//! The scheduling targets (docs/scheduling.md), measured on the local stack with the release
//! binaries and the template's own settings (no overrides), BOS at 50 ms a call:
//! - fairness: a quiet caller's small task, idle and behind another caller's 25,000 items;
//!   three callers with equal backlogs;
//! - full speed: one caller alone, 10,000 items at BOS 100 and 200 ms, against items × latency
//!   ÷ cap, and the stack's own ceiling (BOS at 0 ms);
//! - BOS safety: the simulator's peak of concurrent calls against the cap, in every run above
//!   and in a storm of 20 tasks from 5 callers;
//! - what concurrent writes and sends buy the POST.

use crate::end_to_end::{bos, config, post_as, wait_final};
use crate::report::{median, Report};
use crate::workload::{env, BoxError};
use aws_adapters::{DynamoLanes, SqsWorkQueue};
use bos_simulator::{Knobs, Simulator};
use local_gateway::LocalStack;
use std::time::{Duration, Instant};
use tasks_core::chunk::{split, WorkMessage};
use tasks_core::ports::{LaneStore, WorkQueue};
use tasks_core::task::{TaskId, TaskType};

const LATENCY_MS: u64 = 50;

/// The template's scheduling settings, as they ship.
pub(crate) struct Shipped {
    pub(crate) cap: u64,
    pub(crate) consumers: u64,
    pub(crate) lanes: u64,
    pub(crate) chunk_size: usize,
    pub(crate) batch_size: u32,
}

pub(crate) fn shipped() -> Result<Shipped, BoxError> {
    let t = crate::shipped::template()?;
    let param = |name: &str| -> Result<u64, BoxError> {
        Ok(t.parameters
            .get(name)
            .ok_or_else(|| format!("template has no {name}"))?
            .parse()?)
    };
    let function = |binary: &str| {
        t.functions
            .iter()
            .find(|f| f.binary == binary)
            .ok_or_else(|| format!("template has no {binary} function"))
    };
    let chunk_size = crate::shipped::api_settings()?.chunk_size;
    Ok(Shipped {
        cap: param("BosMaxConcurrentCalls")?,
        consumers: param("ConsumerMaxConcurrency")?,
        lanes: param("LanesPerCaller")?,
        chunk_size,
        batch_size: function("consumer")?
            .sqs_sources
            .first()
            .map(|s| s.batch_size)
            .unwrap_or(10),
    })
}

/// A stack of the release binaries, its BOS simulator, and a client of its table.
pub(crate) struct Bench {
    pub(crate) stack: LocalStack,
    pub(crate) sim: Simulator,
    pub(crate) ddb: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

impl Bench {
    async fn start(name: &str) -> Result<Self, BoxError> {
        Self::start_with(
            name,
            Knobs {
                latency_ms: LATENCY_MS,
                ..Knobs::default()
            },
        )
        .await
    }

    /// A stack whose BOS simulator starts with `knobs`.
    pub(crate) async fn start_with(name: &str, knobs: Knobs) -> Result<Self, BoxError> {
        let ddb_url = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
        let sqs_url = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
        let (sim, bos_url) = bos(knobs).await?;
        let stack = LocalStack::start(config(name, &ddb_url, &sqs_url, &bos_url)).await?;
        let table = stack.provisioned.tables["TasksTable"].clone();
        let (ddb, _) = local_gateway::emulator_clients(&ddb_url, &sqs_url).await;
        // Let every function process reach its first poll.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(Self {
            stack,
            sim,
            ddb,
            table,
        })
    }

    /// A task's duration, from its `created_at` to its `finished_at`, in seconds.
    async fn duration(&self, id: &str) -> Result<f64, BoxError> {
        let (created, finished) = wait_final(&self.ddb, &self.table, id).await?;
        Ok((finished - created).as_seconds_f64())
    }

    fn peak(&self) -> u64 {
        self.sim.stats().peak_concurrency
    }
}

/// The highest BOS peak seen over all runs, and where.
#[derive(Default)]
struct Peaks(Vec<(String, u64)>);

impl Peaks {
    fn add(&mut self, run: &str, peak: u64) {
        self.0.push((run.to_owned(), peak));
    }
}

pub async fn all(report: &mut Report) -> Result<(), BoxError> {
    let s = shipped()?;
    report.note(format!(
        "Scheduling rows run the template as it ships: BOS cap {} calls over {} consumers ({} each), \
         {} lanes per caller, chunks of {}, consumer batches of {}; BOS at {LATENCY_MS} ms a call unless the row names another latency.",
        s.cap,
        s.consumers,
        s.cap / s.consumers,
        s.lanes,
        s.chunk_size,
        s.batch_size
    ));
    let mut peaks = Peaks::default();
    // `BENCH_SCHEDULING_PARTS` picks rows (comma-separated: fairness, share, speed, storm,
    // writes).
    let parts = env(
        "BENCH_SCHEDULING_PARTS",
        "fairness,share,speed,storm,writes",
    );
    let wanted = |part: &str| parts.split(',').any(|p| p.trim() == part);
    if wanted("fairness") {
        fairness(report, &mut peaks).await?;
    }
    if wanted("share") {
        three_callers(report, &mut peaks).await?;
    }
    if wanted("speed") {
        full_speed(report, &s, &mut peaks).await?;
    }
    if wanted("storm") {
        storm(report, &s, &mut peaks).await?;
    }
    let (worst_run, worst) = peaks
        .0
        .iter()
        .max_by_key(|(_, p)| *p)
        .cloned()
        .unwrap_or_default();
    report.check(
        "BOS safety: highest peak of concurrent BOS calls over every scheduling run",
        format!("{worst} (in {worst_run}); cap {}", s.cap),
        "≤ cap",
        worst <= s.cap,
    );
    if wanted("writes") {
        enqueue_parallelism(report).await?;
    }
    Ok(())
}

async fn fairness(report: &mut Report, peaks: &mut Peaks) -> Result<(), BoxError> {
    let b = Bench::start("bench-fair").await?;
    // Given an idle stack: caller B's 5-item task, three times.
    let mut idle = vec![];
    for i in 0..3 {
        let id = post_as(&b.stack, "bob", 5, 500_000 + 10 * i).await?;
        idle.push(b.duration(&id).await?);
    }
    let idle = median(idle);

    // When caller A has 25,000 items queued (5 tasks of 5,000) and B submits 5 more.
    for t in 0..5u64 {
        post_as(&b.stack, "alice", 5_000, 1_000_000 + 10_000 * t).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = post_as(&b.stack, "bob", 5, 600_000).await?;
    let loaded = b.duration(&id).await?;
    let ratio = loaded / idle;
    report.check(
        "fairness: caller B's 5-item task while caller A has 25,000 items queued",
        format!("{loaded:.2} s; idle {idle:.2} s (median of 3); {ratio:.1}× idle"),
        "≤ 2 s and ≤ 15× idle",
        loaded <= 2.0 && ratio <= 15.0,
    );
    peaks.add("fairness", b.peak());
    b.stack.stop();
    Ok(())
}

async fn three_callers(report: &mut Report, peaks: &mut Peaks) -> Result<(), BoxError> {
    const EACH: usize = 2_000;
    let b = Bench::start("bench-share").await?;
    let mut ids = vec![];
    for (i, caller) in ["alice", "bob", "carol"].iter().enumerate() {
        ids.push(post_as(&b.stack, caller, EACH, 2_000_000 + 100_000 * i as u64).await?);
    }
    // Each task's own duration, created → finished.
    let mut durations = vec![];
    for id in &ids {
        durations.push(b.duration(id).await?);
    }
    let (min, max) = durations
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    let spread = max / min;
    report.check(
        format!("fair share: 3 callers submit {EACH} items each at once; their durations"),
        format!(
            "{}; slowest ÷ fastest {spread:.2}",
            durations
                .iter()
                .map(|d| format!("{d:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "within 20 % (≤ 1.20)",
        spread <= 1.2,
    );
    peaks.add("fair share", b.peak());
    b.stack.stop();
    Ok(())
}

/// BOS latencies at which one caller alone is held to the bound: well under the local stack's
/// own ceiling (measured at 0 ms), so the row measures the schedule rather than the emulators.
const FULL_SPEED_LATENCIES_MS: [u64; 2] = [100, 200];
const FULL_SPEED_ITEMS: usize = 10_000;

async fn full_speed(report: &mut Report, s: &Shipped, peaks: &mut Peaks) -> Result<(), BoxError> {
    // The ceiling: what the stack itself does with a BOS that answers at once.
    let b = Bench::start_with("bench-ceiling", Knobs::default()).await?;
    let id = post_as(&b.stack, "alice", FULL_SPEED_ITEMS, 3_000_000).await?;
    let took = b.duration(&id).await?;
    report.info(
        format!("ceiling: one caller alone, {FULL_SPEED_ITEMS} items, BOS without latency"),
        format!("{took:.2} s; {:.0} items/s", FULL_SPEED_ITEMS as f64 / took),
    );
    b.stack.stop();
    for (i, latency_ms) in FULL_SPEED_LATENCIES_MS.into_iter().enumerate() {
        let knobs = Knobs {
            latency_ms,
            ..Knobs::default()
        };
        let b = Bench::start_with("bench-speed", knobs).await?;
        let slots = SlotUse::sample(b.sim.clone());
        let cpu_before = (
            crate::cpu::function_ms(&b.stack, "-ConsumerFunction"),
            crate::cpu::dynamodb_local_ms(),
        );
        let id = post_as(
            &b.stack,
            "alice",
            FULL_SPEED_ITEMS,
            3_100_000 + 100_000 * i as u64,
        )
        .await?;
        let took = b.duration(&id).await?;
        let busy = slots.stop().await / s.cap as f64;
        if std::env::var("BENCH_TIMELINE").is_ok() {
            print_timeline(&b, &id).await?;
        }
        // Let the last invocations return before reading their CPU.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if i == 0 {
            let per_item = |ms: f64| ms * 1e3 / FULL_SPEED_ITEMS as f64;
            let consumers = crate::cpu::function_ms(&b.stack, "-ConsumerFunction") - cpu_before.0;
            let table = crate::cpu::dynamodb_local_ms()
                .zip(cpu_before.1)
                .map(|(after, before)| {
                    format!(
                        "; DynamoDB Local {:.0} µs an item",
                        per_item(after - before)
                    )
                })
                .unwrap_or_default();
            report.check(
                format!(
                    "consumer CPU per item: {FULL_SPEED_ITEMS}-item task, BOS at {latency_ms} ms, every consumer process (user + system, /proc)"
                ),
                format!("{:.0} µs an item{table}", per_item(consumers)),
                "≤ 60 µs",
                per_item(consumers) <= 60.0,
            );
            let at_once = (s.cap / s.consumers) as usize;
            let floor = crate::call_floors::bos_call(latency_ms, at_once).await?;
            report.info(
                format!(
                    "  floor under it: client CPU of one bare HTTP call to BOS (reqwest, {at_once} at once on one thread, as a consumer; BOS at {latency_ms} ms)"
                ),
                format!("{floor:.0} µs a call; the consumer makes one call an item"),
            );
            let ddb_url = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
            let request = crate::call_floors::dynamodb_get(&ddb_url, &b.table, 2).await?;
            report.info(
                "  and under the rest: client CPU of one DynamoDB GetItem through the AWS SDK (the functions' configuration, 2 at once on one thread, DynamoDB Local)",
                format!(
                    "{request:.0} µs a request; a chunk's hand-off and outcome write are requests like it (requests row), shared by its {} items",
                    s.chunk_size
                ),
            );
        }
        let bound = FULL_SPEED_ITEMS as f64 * latency_ms as f64 / 1000.0 / s.cap as f64;
        let share = bound / took;
        report.check(
            format!("full speed: one caller alone, {FULL_SPEED_ITEMS} items, BOS at {latency_ms} ms"),
            format!(
                "{took:.2} s; bound {bound:.2} s; {share:.2} of the bound; BOS slots busy {:.0} % of the time",
                busy * 100.0
            ),
            "≥ 0.85 of the bound",
            share >= 0.85,
        );
        peaks.add(&format!("full speed at {latency_ms} ms"), b.peak());
        b.stack.stop();
    }
    report.note(format!(
        "Bound: items × BOS latency ÷ the global BOS cap ({} calls), the fastest any schedule could be. \
         Durations run from the task's created_at to its finished_at. Slots busy: BOS's calls in \
         progress, sampled every 5 ms from the task's POST to its end, over the cap.",
        s.cap
    ));
    Ok(())
}

/// For finding where a run's time goes (`BENCH_TIMELINE=1`): BOS calls started in each
/// second from the task's creation to its finish, on stderr.
async fn print_timeline(b: &Bench, id: &str) -> Result<(), BoxError> {
    let (created, finished) = wait_final(&b.ddb, &b.table, id).await?;
    let from = (created.unix_timestamp_nanos() / 1_000_000) as u64;
    let to = (finished.unix_timestamp_nanos() / 1_000_000) as u64;
    let calls = b.sim.calls_between(from, to + 1);
    let seconds = (to - from).div_ceil(1000) as usize;
    let mut per_second = vec![0u32; seconds.max(1)];
    for at in &calls {
        per_second[((at - from) / 1000) as usize] += 1;
    }
    eprintln!(
        "timeline: {} calls; first at +{} ms, last at +{} ms, finished at +{} ms; per second: {:?}",
        calls.len(),
        calls.first().map_or(0, |c| c - from),
        calls.last().map_or(0, |c| c - from),
        to - from,
        per_second
    );
    Ok(())
}

/// Samples the simulator's calls in progress until stopped; the mean of the samples.
struct SlotUse {
    stop: tokio::sync::oneshot::Sender<()>,
    samples: tokio::task::JoinHandle<f64>,
}

impl SlotUse {
    fn sample(sim: Simulator) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let samples = tokio::spawn(async move {
            let (mut sum, mut n) = (0u64, 0u64);
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {
                        sum += sim.stats().in_flight;
                        n += 1;
                    }
                }
            }
            sum as f64 / n.max(1) as f64
        });
        Self { stop, samples }
    }

    async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.samples.await.unwrap_or_default()
    }
}

async fn storm(report: &mut Report, s: &Shipped, peaks: &mut Peaks) -> Result<(), BoxError> {
    const EACH: usize = 250;
    let b = Bench::start("bench-storm").await?;
    let callers = ["alice", "bob", "carol", "dave", "erin"];
    let mut ids = vec![];
    for t in 0..20usize {
        let caller = callers[t % callers.len()];
        ids.push(post_as(&b.stack, caller, EACH, 4_000_000 + 1_000 * t as u64).await?);
    }
    for id in &ids {
        wait_final(&b.ddb, &b.table, id).await?;
    }
    let stats = b.sim.stats();
    report.check(
        format!("BOS safety: storm of 20 tasks × {EACH} items from 5 callers"),
        format!(
            "peak {} concurrent BOS calls; cap {}; {} creations for {} items",
            stats.peak_concurrency,
            s.cap,
            stats.creations,
            20 * EACH
        ),
        "peak ≤ cap",
        stats.peak_concurrency <= s.cap && stats.creations == (20 * EACH) as u64,
    );
    peaks.add("storm", stats.peak_concurrency);
    b.stack.stop();
    Ok(())
}

/// What sending a POST's writes and messages concurrently buys, against DynamoDB Local and moto
/// directly: storing a 10,000-item task's chunks, and sending 100 messages (each run on a queue
/// of its own, since moto's FIFO queues slow down as they fill).
async fn enqueue_parallelism(report: &mut Report) -> Result<(), BoxError> {
    let s = shipped()?;
    let ddb_url = env("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000");
    let sqs_url = env("SQS_ENDPOINT", "http://127.0.0.1:5000");
    let (_sim, bos_url) = bos(Knobs::default()).await?;
    let (ddb, sqs) = local_gateway::emulator_clients(&ddb_url, &sqs_url).await;
    let items = crate::in_process::beneficiaries(10_000);
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    for parallel in [1usize, aws_adapters::dynamodb::lanes::PARALLEL_WRITES] {
        let (mut store_ms, mut send_ms) = (vec![], vec![]);
        for _ in 0..5 {
            // A fresh table and queue, with nothing polling them.
            let mut c = config("bench-enqueue", &ddb_url, &sqs_url, &bos_url);
            c.paused_event_sources = vec!["ConsumerFunction".into(), "DeadLetterFunction".into()];
            let stack = LocalStack::start(c).await?;
            let table = stack.provisioned.tables["TasksTable"].clone();
            let queue_url = stack.provisioned.queues["WorkQueue"].url.clone();
            stack.stop();
            let lanes = DynamoLanes::new(ddb.clone(), table).with_parallel_writes(parallel);
            let queue = SqsWorkQueue::new(sqs.clone(), queue_url).with_parallel_batches(parallel);
            let id = TaskId::new_random();
            let chunks = split(
                id,
                TaskType::BeneficiariesImport,
                "bench",
                items.clone(),
                s.chunk_size,
            );
            let t = Instant::now();
            lanes.store_chunks(&chunks, expires).await?;
            store_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let messages: Vec<WorkMessage> = chunks
                .into_iter()
                .take(100)
                .map(WorkMessage::Chunk)
                .collect();
            let t = Instant::now();
            queue.enqueue(&messages).await?;
            send_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        report.info(
            format!(
                "POST writes: a 10,000-item task's {} waiting chunks stored (BatchWriteItem), and 100 messages sent (SendMessageBatch), {parallel} call(s) in flight (median of 5)",
                10_000usize.div_ceil(s.chunk_size)
            ),
            format!("{:.0} ms to store; {:.0} ms to send", median(store_ms), median(send_ms)),
        );
    }
    Ok(())
}
