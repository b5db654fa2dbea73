//! What every benchmark shares, and so depends on nothing else here: the error type,
//! settings read from the environment, and the payees the benchmarks post.

use serde_json::{json, Value};
use tasks_core::test_ibans::german;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `name` from the environment, or `default` when unset or empty.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn items(n: usize, first: u64) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"name": format!("Payee number {i}"), "country": "DE", "currency": "EUR",
                       "iban": german(first + i as u64), "email": format!("payee{i}@example.com"),
                       "external_id": format!("ext-{i}")})
            })
            .collect(),
    )
}
