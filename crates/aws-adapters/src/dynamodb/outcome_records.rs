//! Item outcomes as the table keeps them: grouped in records of [`OUTCOMES_PER_RECORD`]
//! consecutive indexes, keyed `TASK#{id}` / `OUTCOMES#{first index, 6 digits}`, with one
//! attribute an item (`o{index}`: a map of `b`, the outcome's JSON, and, for failed items,
//! `i`, the input kept for the error report and retries, and `k`, the key BOS saw).
//!
//! Why grouped: DynamoDB bills at least one write unit per item written, two in a
//! transaction. An outcome is a few hundred bytes, so an item of its own cost two units for
//! a fraction of a KB, and the outcomes alone came to two units an item. A record of 32 is
//! billed for the KBs it holds. It is also one transaction action per record instead of one
//! per item: less for the SDK to build and for the table to check.
//!
//! Each item is its own attribute, written with `attribute_not_exists` on it, so a record is
//! filled by several writes when a chunk straddles records or a redelivery finishes what an
//! earlier one began, and no outcome is ever written twice.
//!
//! A task stored before grouping has no `grouped_outcomes` attribute; its outcomes stay one
//! item each (`ITEM#{index}`, `codec::outcome_to_item`) until it expires.

use super::codec::{corrupt, n, s, task_pk, Item};
use super::table::build_error;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use std::collections::{BTreeMap, HashMap};
use tasks_core::outcome::ItemOutcome;
use tasks_core::ports::StoreError;
use time::OffsetDateTime;

/// Items an outcome record holds: the template's chunk size, so that a chunk of the
/// template's size fills one record in one write.
pub(crate) const OUTCOMES_PER_RECORD: u32 = 32;

/// The task attribute that says its outcomes are grouped (set when the task is created).
pub(crate) const GROUPED: &str = "grouped_outcomes";

/// The sort key of the last possible record.
pub(crate) const LAST_RECORD_SK: &str = "OUTCOMES#999999";

/// The first index of the record that holds `index`.
pub(crate) fn record_of(index: u32) -> u32 {
    index - index % OUTCOMES_PER_RECORD
}

pub(crate) fn record_sk(first: u32) -> String {
    format!("OUTCOMES#{first:06}")
}

pub(crate) fn record_key(id: tasks_core::task::TaskId, first: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(task_pk(id))),
        ("sk".into(), s(record_sk(first))),
    ])
}

/// The keys of the records that hold `indexes`, each once.
pub(crate) fn record_keys(id: tasks_core::task::TaskId, indexes: &[u32]) -> Vec<Item> {
    let mut firsts: Vec<u32> = indexes.iter().map(|i| record_of(*i)).collect();
    firsts.sort_unstable();
    firsts.dedup();
    firsts.into_iter().map(|f| record_key(id, f)).collect()
}

pub(crate) fn is_record(item: &Item) -> bool {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .is_some_and(|sk| sk.starts_with("OUTCOMES#"))
}

fn attribute(index: u32) -> String {
    format!("o{index}")
}

/// The indexes a record holds outcomes for, read from its attribute names (no decoding).
pub(crate) fn indexes(record: &Item) -> impl Iterator<Item = u32> + '_ {
    record.keys().filter_map(|name| {
        let digits = name.strip_prefix('o')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    })
}

fn value(o: &ItemOutcome) -> Result<AttributeValue, StoreError> {
    let mut fields = HashMap::from([(
        "b".to_owned(),
        s(serde_json::to_string(o).map_err(StoreError::permanent)?),
    )]);
    if let Some(input) = &o.input {
        let input = serde_json::to_string(input).map_err(StoreError::permanent)?;
        fields.insert("i".into(), s(input));
    }
    if let Some(key) = &o.bos_key {
        fields.insert("k".into(), s(key.clone()));
    }
    Ok(AttributeValue::M(fields))
}

fn outcome_from_value(v: &AttributeValue) -> Result<ItemOutcome, StoreError> {
    let fields = v.as_m().map_err(|_| corrupt("outcome"))?;
    let text = |name: &str| fields.get(name).and_then(|v| v.as_s().ok());
    let body = text("b").ok_or_else(|| corrupt("outcome body"))?;
    let mut outcome: ItemOutcome =
        serde_json::from_str(body).map_err(|_| corrupt("outcome body"))?;
    outcome.input = match text("i") {
        Some(input) => Some(serde_json::from_str(input).map_err(|_| corrupt("input"))?),
        None => None,
    };
    outcome.bos_key = text("k").cloned();
    Ok(outcome)
}

/// A record's outcomes, by ascending index.
pub(crate) fn outcomes(record: &Item) -> Result<Vec<ItemOutcome>, StoreError> {
    let mut found: Vec<(u32, &AttributeValue)> = indexes(record)
        .filter_map(|i| record.get(&attribute(i)).map(|v| (i, v)))
        .collect();
    found.sort_unstable_by_key(|(i, _)| *i);
    found
        .into_iter()
        .map(|(_, v)| outcome_from_value(v))
        .collect()
}

/// `outcomes` grouped by record, by ascending first index.
fn by_record(outcomes: &[ItemOutcome]) -> BTreeMap<u32, Vec<&ItemOutcome>> {
    let mut groups: BTreeMap<u32, Vec<&ItemOutcome>> = BTreeMap::new();
    for o in outcomes {
        groups.entry(record_of(o.index)).or_default().push(o);
    }
    groups
}

/// One transaction update a record: each outcome set only if its item has none yet.
pub(crate) fn updates(
    table: &str,
    id: tasks_core::task::TaskId,
    outcomes: &[ItemOutcome],
    expires_at: OffsetDateTime,
) -> Result<Vec<Update>, StoreError> {
    by_record(outcomes)
        .into_iter()
        .map(|(first, group)| {
            let mut set = vec!["#exp = :exp".to_owned()];
            let mut absent = Vec::with_capacity(group.len());
            let mut update = Update::builder()
                .table_name(table)
                .set_key(Some(record_key(id, first)))
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":exp", n(expires_at.unix_timestamp()));
            for o in group {
                let name = attribute(o.index);
                set.push(format!("#{name} = :{name}"));
                absent.push(format!("attribute_not_exists(#{name})"));
                update = update
                    .expression_attribute_values(format!(":{name}"), value(o)?)
                    .expression_attribute_names(format!("#{name}"), name);
            }
            update
                .update_expression(format!("SET {}", set.join(", ")))
                .condition_expression(absent.join(" AND "))
                .build()
                .map_err(build_error)
        })
        .collect()
}

/// Whole records holding `outcomes`, for tools that seed the table (the benchmarks).
pub(crate) fn records(
    id: tasks_core::task::TaskId,
    outcomes: &[ItemOutcome],
    expires_at: OffsetDateTime,
) -> Result<Vec<Item>, StoreError> {
    by_record(outcomes)
        .into_iter()
        .map(|(first, group)| {
            let mut item = record_key(id, first);
            item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
            for o in group {
                item.insert(attribute(o.index), value(o)?);
            }
            Ok(item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasks_core::error_body::ErrorDetail;
    use tasks_core::outcome::OutcomeResult;
    use tasks_core::task::TaskId;

    fn failed(index: u32) -> ItemOutcome {
        ItemOutcome {
            index,
            external_id: Some(format!("e{index}")),
            result: OutcomeResult::Failed {
                error: ErrorDetail::field("iban", "bos_rejected", "refused"),
            },
            input: None,
            bos_key: Some(format!("key-{index}")),
        }
    }

    #[test]
    fn records_hold_consecutive_indexes_and_give_them_back_in_order() {
        let id = TaskId::new_random();
        let outcomes: Vec<ItemOutcome> = [33, 0, 31, 32, 64].into_iter().map(failed).collect();
        let records = records(id, &outcomes, OffsetDateTime::UNIX_EPOCH).unwrap();
        let firsts: Vec<String> = records
            .iter()
            .map(|r| r["sk"].as_s().unwrap().clone())
            .collect();
        assert_eq!(
            firsts,
            ["OUTCOMES#000000", "OUTCOMES#000032", "OUTCOMES#000064"]
        );
        let back: Vec<ItemOutcome> = records.iter().flat_map(outcomes_of).collect();
        let mut expected = outcomes.clone();
        expected.sort_by_key(|o| o.index);
        assert_eq!(back, expected);
        assert!(records.iter().all(is_record));
    }

    fn outcomes_of(record: &Item) -> Vec<ItemOutcome> {
        outcomes(record).unwrap()
    }

    #[test]
    fn only_outcome_attributes_count_as_indexes() {
        let id = TaskId::new_random();
        let mut record = records(id, &[failed(5)], OffsetDateTime::UNIX_EPOCH)
            .unwrap()
            .remove(0);
        record.insert("owner".into(), s("x"));
        record.insert("o".into(), s("x"));
        assert_eq!(indexes(&record).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_chunk_straddling_records_is_one_update_each() {
        let id = TaskId::new_random();
        let outcomes: Vec<ItemOutcome> = (20..52).map(failed).collect();
        let updates = updates("t", id, &outcomes, OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(record_keys(id, &[20, 31, 32, 51]).len(), 2);
    }
}
