//! Business metrics as CloudWatch Embedded Metric Format (EMF): one JSON object per line on
//! stdout, which CloudWatch Logs turns into metrics without any API call from the function.
//!
//! Emitted: `TasksCreated` and `ItemsSubmitted` (api), `ItemsSucceeded`, `ItemsFailed`,
//! `ItemsCancelled` and `BosLatency` per chunk (consumer), `DeadChunks` (dead-letter),
//! `TasksFinished` and `TaskDuration` by final status (whoever finishes a task). Namespace:
//! `METRICS_NAMESPACE` (default `BackgroundTasks`); `METRICS_DISABLED=1` silences them.

use serde_json::{json, Map, Value};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF document: some dimensions, some metrics, each a value or up to 100 values.
#[derive(Debug, Clone, Default)]
pub struct MetricSet {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, Vec<f64>)>,
}

/// EMF takes at most 100 values per metric in one document.
const MAX_VALUES: usize = 100;

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(mut self, name: &'static str, value: u64) -> Self {
        self.metrics.push((name, Unit::Count, vec![value as f64]));
        self
    }

    pub fn millis(mut self, name: &'static str, values: Vec<f64>) -> Self {
        if !values.is_empty() {
            self.metrics.push((name, Unit::Milliseconds, values));
        }
        self
    }

    /// The EMF JSON for this set, stamped `timestamp_ms`.
    pub fn document(&self, namespace: &str, timestamp_ms: i64) -> Value {
        let mut root = Map::new();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }]
            }),
        );
        for (name, value) in &self.dimensions {
            root.insert((*name).into(), Value::String(value.clone()));
        }
        for (name, _, values) in &self.metrics {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many.iter().take(MAX_VALUES).collect::<Vec<_>>()),
            };
            root.insert((*name).into(), value);
        }
        Value::Object(root)
    }

    /// Writes the document as one line on stdout.
    pub fn emit(&self) {
        // Read once per process: the environment does not change under a running function.
        static NAMESPACE: OnceLock<Option<String>> = OnceLock::new();
        let namespace = NAMESPACE.get_or_init(|| {
            let disabled = std::env::var("METRICS_DISABLED").is_ok_and(|v| v == "1");
            (!disabled).then(|| {
                std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "BackgroundTasks".into())
            })
        });
        let Some(namespace) = namespace else { return };
        if self.metrics.is_empty() {
            return;
        }
        let now = time::OffsetDateTime::now_utc();
        let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let line = self.document(namespace, ms).to_string();
        // One line per document; `println!` holds the stdout lock for the whole line, so it
        // cannot interleave with log lines (and test harnesses capture it).
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let doc = MetricSet::new()
            .dimension("TaskType", "beneficiaries-import")
            .count("ItemsSucceeded", 97)
            .millis("BosLatency", vec![12.5, 40.0])
            .document("BackgroundTasks", 1_700_000_000_000);

        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_000i64);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "BackgroundTasks");
        assert_eq!(directive["Dimensions"], json!([["TaskType"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "ItemsSucceeded", "Unit": "Count"}, {"Name": "BosLatency", "Unit": "Milliseconds"}])
        );
        // Every dimension and metric named in the directive is a top-level member.
        assert_eq!(doc["TaskType"], "beneficiaries-import");
        assert_eq!(doc["ItemsSucceeded"], 97.0);
        assert_eq!(doc["BosLatency"], json!([12.5, 40.0]));
        assert_eq!(doc.as_object().unwrap().len(), 4);
    }

    #[test]
    fn value_arrays_are_capped_at_100() {
        let doc = MetricSet::new()
            .millis("BosLatency", vec![1.0; 150])
            .document("N", 0);
        assert_eq!(doc["BosLatency"].as_array().unwrap().len(), 100);
    }

    #[test]
    fn empty_latency_lists_are_left_out() {
        let doc = MetricSet::new()
            .millis("BosLatency", vec![])
            .count("X", 1)
            .document("N", 0);
        assert!(doc.get("BosLatency").is_none());
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
