//! Item outcomes as the table keeps them: grouped in records of [`OUTCOMES_PER_RECORD`]
//! consecutive indexes, keyed `TASK#{id}` / `OUTCOMES#{first index, 6 digits}`.
//!
//! Each write to a record adds one part, `w{its first index}`: its outcomes as deflated JSON
//! (each with, for failed items, the input kept for the error report and retries, and the
//! key BOS saw), and one small mark per item, `o{index}` (the part's first index), set only
//! if absent. So a record is filled by several writes when a chunk straddles records or a
//! redelivery finishes what an earlier one began, and no outcome is ever written twice.
//!
//! Why: DynamoDB bills at least one write unit per item written and per started KB, twice in
//! a transaction. An outcome is a few hundred bytes, so an item each cost two units; a record
//! of 32 as plain attributes was still about 20 units for 10 KB; deflated, the same outcomes
//! take about a third of that (`docs/benchmarks.md`). It is also one transaction action a
//! record instead of one an item.
//!
//! A task stored before grouping has no `grouped_outcomes` attribute; its outcomes stay one
//! item each (`ITEM#{index}`, `codec::outcome_to_item`) until it expires.

use super::codec::{n, s, task_pk, Item};
use super::deflated;
use super::table::build_error;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tasks_core::beneficiary::Beneficiary;
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

fn mark(index: u32) -> String {
    format!("o{index}")
}

fn part(first: u32) -> String {
    format!("w{first}")
}

/// The number after `prefix` in an attribute's name, if that is all there is.
fn numbered(name: &str, prefix: char) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The indexes a record holds outcomes for, read from its marks (nothing to inflate).
pub(crate) fn indexes(record: &Item) -> impl Iterator<Item = u32> + '_ {
    record.keys().filter_map(|name| numbered(name, 'o'))
}

/// One outcome as a part holds it: the outcome's JSON and what it keeps beside it.
#[derive(Serialize)]
struct Stored<'a> {
    o: &'a ItemOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    i: Option<&'a Beneficiary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k: Option<&'a str>,
}

#[derive(Deserialize)]
struct Unpacked {
    o: ItemOutcome,
    #[serde(default)]
    i: Option<Beneficiary>,
    #[serde(default)]
    k: Option<String>,
}

/// A part: the outcomes' JSON, deflated.
fn pack(outcomes: &[&ItemOutcome]) -> Result<AttributeValue, StoreError> {
    let stored: Vec<Stored> = outcomes
        .iter()
        .map(|o| Stored {
            o,
            i: o.input.as_ref(),
            k: o.bos_key.as_deref(),
        })
        .collect();
    deflated::pack(&stored)
}

fn unpack(part: &AttributeValue) -> Result<Vec<ItemOutcome>, StoreError> {
    let stored: Vec<Unpacked> = deflated::unpack(part, "outcomes")?;
    Ok(stored
        .into_iter()
        .map(|r| ItemOutcome {
            input: r.i,
            bos_key: r.k,
            ..r.o
        })
        .collect())
}

/// A record's outcomes, by ascending index.
pub(crate) fn outcomes(record: &Item) -> Result<Vec<ItemOutcome>, StoreError> {
    let mut found = Vec::new();
    for (name, value) in record {
        if numbered(name, 'w').is_some() {
            found.extend(unpack(value)?);
        }
    }
    found.sort_unstable_by_key(|o| o.index);
    Ok(found)
}

/// `outcomes` grouped by record, by ascending first index.
fn by_record(outcomes: &[ItemOutcome]) -> BTreeMap<u32, Vec<&ItemOutcome>> {
    let mut groups: BTreeMap<u32, Vec<&ItemOutcome>> = BTreeMap::new();
    for o in outcomes {
        groups.entry(record_of(o.index)).or_default().push(o);
    }
    groups
}

/// One transaction update a record: a part with these outcomes, and each item's mark set
/// only if it has none yet.
pub(crate) fn updates(
    table: &str,
    id: tasks_core::task::TaskId,
    outcomes: &[ItemOutcome],
    expires_at: OffsetDateTime,
) -> Result<Vec<Update>, StoreError> {
    by_record(outcomes)
        .into_iter()
        .map(|(first, group)| {
            let written = group[0].index;
            let mut set = vec!["#exp = :exp".to_owned(), "#part = :part".to_owned()];
            let mut absent = Vec::with_capacity(group.len());
            let mut update = Update::builder()
                .table_name(table)
                .set_key(Some(record_key(id, first)))
                .expression_attribute_names("#exp", "expires_at")
                .expression_attribute_values(":exp", n(expires_at.unix_timestamp()))
                .expression_attribute_names("#part", part(written))
                .expression_attribute_values(":part", pack(&group)?)
                .expression_attribute_values(":written", n(written));
            for o in &group {
                let name = mark(o.index);
                set.push(format!("#{name} = :written"));
                absent.push(format!("attribute_not_exists(#{name})"));
                update = update.expression_attribute_names(format!("#{name}"), name);
            }
            update
                .update_expression(format!("SET {}", set.join(", ")))
                .condition_expression(absent.join(" AND "))
                .build()
                .map_err(build_error)
        })
        .collect()
}

/// Whole records holding `outcomes`, one part each, for tools that seed the table (the
/// benchmarks).
pub(crate) fn records(
    id: tasks_core::task::TaskId,
    outcomes: &[ItemOutcome],
    expires_at: OffsetDateTime,
) -> Result<Vec<Item>, StoreError> {
    by_record(outcomes)
        .into_iter()
        .map(|(first, group)| {
            let written = group[0].index;
            let mut item = record_key(id, first);
            item.insert("expires_at".into(), n(expires_at.unix_timestamp()));
            item.insert(part(written), pack(&group)?);
            for o in &group {
                item.insert(mark(o.index), n(written));
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
        let input = serde_json::json!({"name": "N", "country": "DE", "currency": "EUR",
            "iban": "DE89370400440532013000"});
        ItemOutcome {
            index,
            external_id: Some(format!("e{index}")),
            result: OutcomeResult::Failed {
                error: ErrorDetail::field("iban", "bos_rejected", "refused"),
            },
            input: Beneficiary::parse(&input).ok(),
            bos_key: Some(format!("key-{index}")),
        }
    }

    fn succeeded(index: u32) -> ItemOutcome {
        let output = serde_json::json!({"beneficiary": {"id": format!("ben_{index:032}"),
            "name": format!("Payee number {index}"), "country": "DE", "currency": "EUR",
            "iban": "DE89370400440532013000", "email": format!("payee{index}@example.com"),
            "external_id": format!("ext-{index}"), "created_at": "2026-12-04T18:00:00Z"}});
        ItemOutcome {
            index,
            external_id: Some(format!("ext-{index}")),
            result: OutcomeResult::Succeeded {
                output: output.as_object().cloned().unwrap_or_default(),
            },
            input: None,
            bos_key: None,
        }
    }

    #[test]
    fn a_record_of_a_chunk_is_a_fraction_of_its_json() {
        let outcomes: Vec<ItemOutcome> = (0..32).map(succeeded).collect();
        let json = serde_json::to_vec(&outcomes).unwrap().len();
        let record = records(TaskId::new_random(), &outcomes, OffsetDateTime::UNIX_EPOCH)
            .unwrap()
            .remove(0);
        let packed = record["w0"].as_b().unwrap().as_ref().len();
        assert!(packed * 3 < json, "{packed} bytes packed of {json}");
        assert_eq!(outcomes_of(&record), outcomes);
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
        assert_eq!(
            outcomes_of(&record),
            [failed(5)],
            "the input and key kept beside it"
        );
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
