//! `text/csv` bodies for `POST /tasks/{task_type}`, the way spreadsheets write them: RFC 4180
//! (quoted fields may hold commas, quotes and line breaks), UTF-8 with or without the BOM Excel
//! puts first, LF or CRLF line ends, and a header row naming the same fields as the JSON body.
//!
//! Each row becomes the JSON object a JSON body would hold for it (an empty cell is an absent
//! field), so what follows is the JSON path itself: the same validation, limits and
//! idempotency. What only a CSV can get wrong is refused here, before any row is looked at:
//! a malformed file (400 `malformed_csv`, naming the line), text that is not UTF-8
//! (400 `invalid_encoding`, naming the line), and a header with an unknown, repeated or missing
//! column (400 `invalid_csv_header`, one detail per column). The error report's own columns
//! (`index`, `field`, `code`, `message`; `csv_output`) are ignored, so a report can be fixed
//! and posted back as it is.

use crate::beneficiary::{FIELDS, REQUIRED_FIELDS};
use crate::csv_output::REPORT_COLUMNS;
use crate::error::AppError;
use crate::error_body::ErrorDetail;
use serde_json::{Map, Value};

/// What a CSV body holds: one JSON object per data row, and the line each row starts on (1 is
/// the header's), for error details.
#[derive(Debug, Default, PartialEq)]
pub struct CsvRows {
    pub values: Vec<Value>,
    pub lines: Vec<u64>,
}

/// The byte-order mark Excel writes at the start of a UTF-8 CSV.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a CSV body into rows. `max_rows` bounds the work: past it the body is refused as
/// too large a batch without reading the rest.
pub fn parse(body: &[u8], max_rows: usize) -> Result<CsvRows, AppError> {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let mut lines = LineCounter::new(body);
    let header = reader
        .headers()
        .map_err(|e| refusal(&e, &mut lines))?
        .clone();
    check_header(&header)?;
    let mut rows = CsvRows::default();
    for record in reader.records() {
        let record = record.map_err(|e| refusal(&e, &mut lines))?;
        if rows.values.len() == max_rows {
            return Err(AppError::TooManyItems { max: max_rows });
        }
        let mut object = Map::new();
        for (column, cell) in header.iter().zip(record.iter()) {
            if !cell.is_empty() && !REPORT_COLUMNS.contains(&column) {
                object.insert(column.to_owned(), Value::String(cell.to_owned()));
            }
        }
        rows.lines
            .push(lines.line_at(record.position().map_or(0, csv::Position::byte)));
        rows.values.push(Value::Object(object));
    }
    Ok(rows)
}

/// A `csv` error as the client's 400: where the file stopped making sense, never its content.
fn refusal(error: &csv::Error, lines: &mut LineCounter) -> AppError {
    let line = lines.line_at(error.position().map_or(0, csv::Position::byte));
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => AppError::InvalidCsvEncoding { line },
        _ => AppError::MalformedCsv { line },
    }
}

/// Line numbers as an editor shows them, from byte offsets. (`csv`'s own line count lags one
/// behind after a CRLF, whose `\n` it reads as the start of the next record.) Offsets only grow,
/// so the counting is one pass over the body.
struct LineCounter<'a> {
    body: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            at: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after `byte` that is not a line feed.
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte).map_or(self.body.len(), |b| b.min(self.body.len()));
        while self.body.get(start) == Some(&b'\n') {
            start += 1;
        }
        if start >= self.at {
            self.line += self.body[self.at..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.at = start;
        }
        self.line
    }
}

/// Every column must be a field of the JSON body, named once, and every required field must
/// have a column.
fn check_header(header: &csv::StringRecord) -> Result<(), AppError> {
    let mut details = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for column in header.iter() {
        if REPORT_COLUMNS.contains(&column) {
            continue;
        }
        if !FIELDS.contains(&column) {
            details.push(ErrorDetail::field(
                column,
                "unknown_column",
                "This column is not a field of a beneficiary.",
            ));
        } else if seen.contains(&column) {
            details.push(ErrorDetail::field(
                column,
                "duplicate_column",
                "This column appears more than once.",
            ));
        }
        seen.push(column);
    }
    for required in REQUIRED_FIELDS {
        if !seen.contains(&required) {
            details.push(ErrorDetail::field(
                required,
                "missing_column",
                "This required field has no column.",
            ));
        }
    }
    // A header of any width must not make an answer of any size.
    details.truncate(FIELDS.len() * 2);
    if details.is_empty() {
        Ok(())
    } else {
        Err(AppError::InvalidCsvHeader(details))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(text: &str) -> CsvRows {
        parse(text.as_bytes(), 100).unwrap()
    }

    fn code(body: &[u8]) -> (&'static str, String) {
        let e = parse(body, 100).unwrap_err();
        (e.code(), e.to_string())
    }

    #[test]
    fn excel_csv_with_bom_crlf_quotes_and_non_ascii() {
        let text = "\u{feff}name,country,currency,iban,external_id\r\n\
                    \"Müller, Jörg\",DE,EUR,DE89370400440532013000,a-1\r\n\
                    \"Say \"\"hi\"\"\",FR,EUR,FR1420041010050500013M02606,\r\n";
        let rows = ok(text);
        assert_eq!(
            rows.values,
            vec![
                json!({"name": "Müller, Jörg", "country": "DE", "currency": "EUR",
                       "iban": "DE89370400440532013000", "external_id": "a-1"}),
                json!({"name": "Say \"hi\"", "country": "FR", "currency": "EUR",
                       "iban": "FR1420041010050500013M02606"}),
            ]
        );
        assert_eq!(rows.lines, vec![2, 3]);
    }

    #[test]
    fn a_quoted_line_break_keeps_later_lines_numbered_as_the_file_has_them() {
        let rows = ok("name,country,currency,iban\n\"A\nB\",DE,EUR,X\nC,DE,EUR,Y\n");
        assert_eq!(rows.lines, vec![2, 4]);
        let crlf = ok("name,country,currency,iban\r\n\"A\r\nB\",DE,EUR,X\r\nC,DE,EUR,Y\r\n");
        assert_eq!(crlf.lines, vec![2, 4]);
        assert_eq!(
            code(b"name,country,currency,iban\r\nA,DE,EUR,X\r\nB,DE,EUR\r\n").1,
            "the CSV is malformed at line 3"
        );
    }

    #[test]
    fn the_header_must_name_known_fields_once_and_every_required_one() {
        let e = parse(b"name,name,country,iban,colour\nA,A,DE,X,red\n", 100).unwrap_err();
        let AppError::InvalidCsvHeader(details) = e else {
            panic!("{e:?}")
        };
        let found: Vec<(&str, &str)> = details
            .iter()
            .map(|d| (d.field.as_deref().unwrap(), d.code.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("name", "duplicate_column"),
                ("colour", "unknown_column"),
                ("currency", "missing_column"),
            ]
        );
    }

    #[test]
    fn a_ragged_row_or_stray_quote_is_malformed_at_its_line() {
        assert_eq!(
            code(b"name,country,currency,iban\nA,DE,EUR,X\nB,DE,EUR\n"),
            ("malformed_csv", "the CSV is malformed at line 3".into())
        );
        assert_eq!(
            code(b"name,country,currency,iban\nA,DE,EUR,X\nB,\"DE,EUR,X\n").0,
            "malformed_csv"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_at_its_line() {
        assert_eq!(
            code(b"name,country,currency,iban\nA,DE,EUR,X\nM\xfcller,DE,EUR,X\n"),
            ("invalid_encoding", "the CSV is not UTF-8 at line 3".into())
        );
    }

    #[test]
    fn no_rows_is_an_empty_batch_for_the_caller_and_too_many_stop_early() {
        assert_eq!(ok("name,country,currency,iban\r\n").values.len(), 0);
        let many = format!("name,country,currency,iban\n{}", "A,DE,EUR,X\n".repeat(5));
        assert_eq!(
            parse(many.as_bytes(), 4).unwrap_err().code(),
            "too_many_items"
        );
    }

    #[test]
    fn a_huge_header_gives_a_bounded_answer() {
        let header: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
        let e = parse(header.join(",").as_bytes(), 100).unwrap_err();
        let AppError::InvalidCsvHeader(details) = e else {
            panic!("{e:?}")
        };
        assert!(details.len() <= FIELDS.len() * 2);
    }
}
