//! `Accept: text/csv` answers of `GET …/{task_id}/errors` and `…/result`: one page of outcomes
//! as a CSV file with its own header row, so every page opens in a spreadsheet on its own.
//!
//! - The error report has one row per failed item: `index`, the original input fields
//!   (`name` … `external_id`, as the JSON body names them), then `field`, `code` and `message`. Its header is one the
//!   importer accepts (`csv_input` ignores the report's own columns), so an operator can fix the
//!   rows and post the file back as it is.
//! - The result has one row per item: `index`, `external_id`, `status`, the task type's result
//!   columns (for an import, the created beneficiary's fields), then `code` and `message` for a
//!   failed item.
//!
//! A cell that a spreadsheet would run as a formula (one starting with `=`, `+`, `-`, `@`, a tab
//! or a carriage return) is written with a leading `'`, as OWASP advises against CSV injection:
//! the file holds what clients typed, and it is opened by people with access to money.

use crate::beneficiary::{Beneficiary, FIELDS};
use crate::outcome::{ItemOutcome, OutcomeResult};
use crate::task::TaskType;
use serde_json::Value;

/// The report's own columns: not fields of a beneficiary, and ignored when the report is posted
/// back as an import.
pub const REPORT_COLUMNS: [&str; 4] = ["index", "field", "code", "message"];

/// The failed items among `outcomes`, as an error report page.
pub fn errors(outcomes: &[ItemOutcome]) -> String {
    let mut rows = vec![header(
        ["index"]
            .into_iter()
            .chain(FIELDS)
            .chain(["field", "code", "message"]),
    )];
    for o in outcomes {
        let OutcomeResult::Failed { error } = &o.result else {
            continue;
        };
        let mut cells = vec![o.index.to_string()];
        cells.extend(input_cells(o.input.as_ref(), o.external_id.as_deref()));
        cells.extend([
            error.field.clone().unwrap_or_default(),
            error.code.clone(),
            error.message.clone(),
        ]);
        rows.push(cells);
    }
    write(rows)
}

/// Every item among `outcomes`, as a result page.
pub fn result(task_type: TaskType, outcomes: &[ItemOutcome]) -> String {
    let columns = result_columns(task_type);
    let mut rows = vec![header(
        ["index", "external_id", "status"]
            .into_iter()
            .chain(columns.iter().map(|c| c.0))
            .chain(["code", "message"]),
    )];
    for o in outcomes {
        let mut cells = vec![
            o.index.to_string(),
            o.external_id.clone().unwrap_or_default(),
            o.result.status().to_owned(),
        ];
        let (output, error) = match &o.result {
            OutcomeResult::Succeeded { output } => (Some(output), None),
            OutcomeResult::Failed { error } => (None, Some(error)),
            OutcomeResult::Cancelled | OutcomeResult::NotAttempted => (None, None),
        };
        cells.extend(columns.iter().map(|(_, object, field)| {
            output
                .and_then(|o| o.get(*object))
                .and_then(|v| v.get(*field))
                .map(text)
                .unwrap_or_default()
        }));
        cells.push(error.map(|e| e.code.clone()).unwrap_or_default());
        cells.push(error.map(|e| e.message.clone()).unwrap_or_default());
        rows.push(cells);
    }
    write(rows)
}

/// A task type's result columns: (column, object of the output, field of that object).
fn result_columns(task_type: TaskType) -> &'static [(&'static str, &'static str, &'static str)] {
    match task_type {
        TaskType::BeneficiariesImport => &[
            ("beneficiary_id", "beneficiary", "id"),
            ("name", "beneficiary", "name"),
            ("country", "beneficiary", "country"),
            ("currency", "beneficiary", "currency"),
            ("iban", "beneficiary", "iban"),
            ("bic", "beneficiary", "bic"),
            ("email", "beneficiary", "email"),
            ("created_at", "beneficiary", "created_at"),
        ],
        TaskType::BeneficiariesValidation => &[("valid", "verdict", "valid")],
    }
}

fn input_cells(input: Option<&Beneficiary>, external_id: Option<&str>) -> Vec<String> {
    let owned = |v: Option<&str>| v.unwrap_or_default().to_owned();
    match input {
        // In the order of `FIELDS`, the report's header.
        Some(b) => vec![
            b.name().to_owned(),
            b.country().to_owned(),
            b.currency().to_owned(),
            b.iban().to_owned(),
            owned(b.bic()),
            owned(b.email()),
            owned(b.external_id().or(external_id)),
        ],
        // An outcome recorded before inputs were kept: only what it has.
        None => {
            let mut cells = vec![String::new(); FIELDS.len()];
            cells[FIELDS.len() - 1] = owned(external_id);
            cells
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn header<'a>(columns: impl Iterator<Item = &'a str>) -> Vec<String> {
    columns.map(str::to_owned).collect()
}

/// Never a formula: see the module's documentation.
fn defused(cell: String) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell,
    }
}

/// RFC 4180 with CRLF line ends, quoting only where needed.
fn write(rows: Vec<Vec<String>>) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for row in rows {
        // Writing to memory fails only on a row of another width, which this module never makes.
        let _ = out.write_record(row.into_iter().map(defused));
    }
    let bytes = out.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv_input;
    use crate::error_body::ErrorDetail;
    use serde_json::json;

    fn failed(index: u32, name: &str, code: &str) -> ItemOutcome {
        let input = Beneficiary::parse(&json!({"name": name, "country": "DE", "currency": "EUR",
            "iban": "DE89370400440532013000", "external_id": format!("e-{index}")}))
        .unwrap();
        ItemOutcome {
            index,
            external_id: Some(format!("e-{index}")),
            result: OutcomeResult::Failed {
                error: ErrorDetail::field("iban", code, "Went wrong, really.")
                    .at(index, Some(&format!("e-{index}"))),
            },
            input: Some(input),
            bos_key: None,
        }
    }

    #[test]
    fn the_error_report_posts_back_as_an_import() {
        let report = errors(&[failed(4, "Müller, Jörg", "duplicate_beneficiary")]);
        assert_eq!(
            report,
            "index,name,country,currency,iban,bic,email,external_id,field,code,message\r\n\
             4,\"Müller, Jörg\",DE,EUR,DE89370400440532013000,,,e-4,iban,duplicate_beneficiary,\"Went wrong, really.\"\r\n"
        );
        let rows = csv_input::parse(report.as_bytes(), 10).unwrap();
        assert_eq!(
            rows.values,
            vec![
                json!({"external_id": "e-4", "name": "Müller, Jörg", "country": "DE",
                "currency": "EUR", "iban": "DE89370400440532013000"})
            ]
        );
    }

    #[test]
    fn results_have_a_row_per_item_with_the_created_fields() {
        let ok = ItemOutcome {
            index: 0,
            external_id: None,
            result: OutcomeResult::Succeeded {
                output: json!({"beneficiary": {"id": "ben_1", "name": "A", "country": "DE",
                    "currency": "EUR", "iban": "DE89370400440532013000",
                    "created_at": "2026-11-23T00:00:00Z"}})
                .as_object()
                .unwrap()
                .clone(),
            },
            input: None,
            bos_key: None,
        };
        let text = result(
            TaskType::BeneficiariesImport,
            &[ok, failed(1, "B", "rejected")],
        );
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "index,external_id,status,beneficiary_id,name,country,currency,iban,bic,email,created_at,code,message");
        assert_eq!(
            lines[1],
            "0,,succeeded,ben_1,A,DE,EUR,DE89370400440532013000,,,2026-11-23T00:00:00Z,,"
        );
        assert_eq!(
            lines[2],
            "1,e-1,failed,,,,,,,,,rejected,\"Went wrong, really.\""
        );
    }

    #[test]
    fn no_cell_is_a_formula() {
        let mut o = failed(0, "A", "rejected");
        o.external_id = Some("=HYPERLINK(\"http://x\")".into());
        o.input = None;
        let report = errors(&[o]);
        assert!(
            report.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
            "{report}"
        );
    }
}
