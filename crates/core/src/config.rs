//! Settings of the use cases, read once at cold start from the function's environment (the
//! variables `template.yaml` sets, which the local gateway sets too). Defaults suit local use.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Most items one task may hold (`MAX_ITEMS`, default 10,000).
    pub max_items: usize,
    /// Largest request body accepted (`MAX_BODY_BYTES`, default 3,000,000: the body travels
    /// JSON-escaped inside a Lambda event, which Lambda caps at 6 MiB, and escaping can double
    /// a valid JSON body; docs/decisions.md).
    pub max_body_bytes: usize,
    /// Most rows an uploaded file may hold (`MAX_FILE_ROWS`, default and most
    /// `upload::MAX_FILE_ROWS`, a million: item sort keys have six digits).
    pub max_file_rows: u32,
    /// Items per queue message (`CHUNK_SIZE`, default 99, at most 99).
    pub chunk_size: usize,
    /// Lanes one caller may have open at once (`LANES_PER_CALLER`, default 4): about how many
    /// of a caller's chunks may wait in the work queue (docs/scheduling.md).
    pub lanes_per_owner: u64,
    /// How long finished tasks stay readable (`RETENTION_DAYS`, default 30).
    pub retention: Duration,
    /// How many BOS calls one consumer invocation makes at once: the global cap on concurrent
    /// BOS calls (`BOS_CALL_CAP`, default 32) shared out over the consumer's maximum
    /// concurrency (`CONSUMER_MAX_CONCURRENCY`, default 4), rounded down. Together they keep BOS
    /// at or under the cap with no shared counter.
    pub bos_concurrency: usize,
    /// Time kept back from the Lambda deadline to record outcomes (`DEADLINE_RESERVE_MS`).
    pub deadline_reserve: Duration,
    /// How long `Idempotency-Key` answers are kept (`IDEMPOTENCY_TTL_HOURS`, default 24).
    pub idempotency_ttl: Duration,
    /// Which webhook receivers are allowed: public `https` ones, plus `http` and loopback ones
    /// when `WEBHOOK_ALLOW_LOOPBACK` is `true` (the local stack sets it; the template never).
    pub webhook_targets: crate::webhook_url::TargetPolicy,
    /// Multiplies the webhook retry schedule's waits (`WEBHOOK_SCHEDULE_SCALE`, default 1):
    /// the local stack shrinks them so a test sees the whole schedule; the schedule itself is
    /// `webhook_delivery::SCHEDULE`.
    pub webhook_schedule_scale: f64,
    /// How long one webhook attempt may take (`WEBHOOK_ATTEMPT_TIMEOUT_MS`, default 15 s).
    pub webhook_attempt_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_body_bytes: 3_000_000,
            max_file_rows: crate::upload::MAX_FILE_ROWS,

            chunk_size: crate::chunk::MAX_CHUNK_SIZE,
            lanes_per_owner: 4,
            retention: Duration::from_secs(30 * 24 * 3600),
            bos_concurrency: 8,
            deadline_reserve: Duration::from_millis(2_000),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            webhook_targets: crate::webhook_url::TargetPolicy::default(),
            webhook_schedule_scale: 1.0,
            webhook_attempt_timeout: crate::webhook_delivery::ATTEMPT_TIMEOUT,
        }
    }
}

/// A variable that is set but does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name} has an invalid value")]
pub struct InvalidSetting {
    pub name: &'static str,
}

impl Settings {
    pub fn from_env() -> Result<Self, InvalidSetting> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidSetting> {
        fn num<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            default: T,
        ) -> Result<T, InvalidSetting> {
            match get(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| InvalidSetting { name }),
            }
        }
        let d = Settings::default();
        let chunk_size: usize = num(&get, "CHUNK_SIZE", d.chunk_size)?;
        if chunk_size == 0 || chunk_size > crate::chunk::MAX_CHUNK_SIZE {
            return Err(InvalidSetting { name: "CHUNK_SIZE" });
        }
        let cap: usize = num(&get, "BOS_CALL_CAP", 32)?;
        let consumers: usize = num(&get, "CONSUMER_MAX_CONCURRENCY", 4)?;
        if consumers == 0 {
            return Err(InvalidSetting {
                name: "CONSUMER_MAX_CONCURRENCY",
            });
        }
        // Fewer calls than consumers would need a share below one call each.
        if cap < consumers {
            return Err(InvalidSetting {
                name: "BOS_CALL_CAP",
            });
        }
        let max_file_rows: u32 = num(&get, "MAX_FILE_ROWS", d.max_file_rows)?;
        if max_file_rows == 0 || max_file_rows > crate::upload::MAX_FILE_ROWS {
            return Err(InvalidSetting {
                name: "MAX_FILE_ROWS",
            });
        }
        Ok(Self {
            max_items: num(&get, "MAX_ITEMS", d.max_items)?,
            max_file_rows,
            max_body_bytes: num(&get, "MAX_BODY_BYTES", d.max_body_bytes)?,
            chunk_size,
            lanes_per_owner: num(&get, "LANES_PER_CALLER", d.lanes_per_owner)?.max(1),
            retention: Duration::from_secs(num(&get, "RETENTION_DAYS", 30u64)? * 24 * 3600),
            bos_concurrency: cap / consumers,
            deadline_reserve: Duration::from_millis(num(&get, "DEADLINE_RESERVE_MS", 2_000u64)?),
            idempotency_ttl: Duration::from_secs(num(&get, "IDEMPOTENCY_TTL_HOURS", 24u64)? * 3600),
            webhook_targets: crate::webhook_url::TargetPolicy {
                allow_loopback: num(&get, "WEBHOOK_ALLOW_LOOPBACK", false)?,
            },
            webhook_schedule_scale: num(&get, "WEBHOOK_SCHEDULE_SCALE", 1.0f64)?.clamp(0.0, 1.0),
            webhook_attempt_timeout: Duration::from_millis(num(
                &get,
                "WEBHOOK_ATTEMPT_TIMEOUT_MS",
                15_000u64,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, InvalidSetting> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let s = from(&[]).unwrap();
        assert_eq!(s.max_items, 10_000);
        let s = from(&[("MAX_ITEMS", "50"), ("RETENTION_DAYS", "1")]).unwrap();
        assert_eq!(s.max_items, 50);
        assert_eq!(s.retention, Duration::from_secs(86_400));
    }

    #[test]
    fn the_bos_cap_is_shared_out_over_the_consumers() {
        assert_eq!(from(&[]).unwrap().bos_concurrency, 8);
        let s = from(&[("BOS_CALL_CAP", "10"), ("CONSUMER_MAX_CONCURRENCY", "3")]).unwrap();
        assert_eq!(s.bos_concurrency, 3, "3 consumers × 3 calls stay under 10");
        assert_eq!(
            from(&[("BOS_CALL_CAP", "2"), ("CONSUMER_MAX_CONCURRENCY", "3")])
                .unwrap_err()
                .name,
            "BOS_CALL_CAP"
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            from(&[("MAX_ITEMS", "lots")]).unwrap_err().name,
            "MAX_ITEMS"
        );
        assert_eq!(
            from(&[("CHUNK_SIZE", "100")]).unwrap_err().name,
            "CHUNK_SIZE"
        );
    }
}
