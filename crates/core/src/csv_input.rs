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
use crate::read_tally::{line_too_long, ReadTally};
use serde_json::{Map, Value};
use std::io::Read;

/// What a CSV body holds: one JSON object per data row, and the line each row starts on (1 is
/// the header's), for error details.
#[derive(Debug, Default, PartialEq)]
pub struct CsvRows {
    pub values: Vec<Value>,
    pub lines: Vec<u64>,
}

/// Reads a CSV body into rows. `max_rows` bounds the work: past it the body is refused as
/// too large a batch without reading the rest.
pub fn parse(body: &[u8], max_rows: usize) -> Result<CsvRows, AppError> {
    let mut stream = CsvStream::new(body, usize::MAX).map_err(ReadError::into_refusal)?;
    let mut rows = CsvRows::default();
    while let Some((value, line)) = stream.next_row().map_err(ReadError::into_refusal)? {
        if rows.values.len() == max_rows {
            return Err(AppError::TooManyItems { max: max_rows });
        }
        rows.lines.push(line);
        rows.values.push(value);
    }
    Ok(rows)
}

/// Why a CSV stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is wrong: the client's 4xx, or a rejected upload.
    #[error(transparent)]
    Refused(AppError),
    /// The bytes could not be read (the store): worth trying again.
    #[error("the file could not be read")]
    Io(#[source] std::io::Error),
}

impl ReadError {
    /// For a body already in memory, which reads cannot fail.
    fn into_refusal(self) -> AppError {
        match self {
            Self::Refused(e) => e,
            Self::Io(_) => AppError::InvalidBody("readable CSV"),
        }
    }
}

/// A CSV file read row by row from any reader, the header first: what [`parse`] does for a
/// body, in constant memory for a file of any length.
pub struct CsvStream<R: Read> {
    reader: csv::Reader<ReadTally<R>>,
    header: csv::StringRecord,
    record: csv::StringRecord,
}

impl<R: Read> CsvStream<R> {
    /// Reads and checks the header. Lines longer than `max_line` bytes stop the read.
    pub fn new(inner: R, max_line: usize) -> Result<Self, ReadError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(ReadTally::new(inner, max_line));
        let header = match reader.headers() {
            Ok(header) => header.clone(),
            Err(e) => return Err(read_error(e, reader.get_mut())),
        };
        check_header(&header).map_err(ReadError::Refused)?;
        Ok(Self {
            reader,
            header,
            record: csv::StringRecord::new(),
        })
    }

    /// The next row as the JSON object a JSON body would hold for it, and its line.
    pub fn next_row(&mut self) -> Result<Option<(Value, u64)>, ReadError> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let mut object = Map::new();
                for (column, cell) in self.header.iter().zip(self.record.iter()) {
                    if !cell.is_empty() && !REPORT_COLUMNS.contains(&column) {
                        object.insert(column.to_owned(), Value::String(cell.to_owned()));
                    }
                }
                let byte = self.record.position().map_or(0, csv::Position::byte);
                let line = self.reader.get_mut().line_at(byte);
                Ok(Some((Value::Object(object), line)))
            }
            Err(e) => Err(read_error(e, self.reader.get_mut())),
        }
    }

    /// What was read so far: bytes, hash, lines.
    pub fn tally(&self) -> &ReadTally<R> {
        self.reader.get_ref()
    }
}

/// A `csv` error as a refusal that names where the file stopped making sense, never its
/// content; or a read that failed.
fn read_error<R: Read>(error: csv::Error, tally: &mut ReadTally<R>) -> ReadError {
    let line = tally.line_at(error.position().map_or(0, csv::Position::byte));
    if let csv::ErrorKind::Io(io) = error.kind() {
        if let Some(long) = line_too_long(io) {
            return ReadError::Refused(AppError::LineTooLong {
                line: long.line,
                max_bytes: long.max,
            });
        }
    }
    match error.into_kind() {
        csv::ErrorKind::Io(io) => ReadError::Io(io),
        csv::ErrorKind::Utf8 { .. } => ReadError::Refused(AppError::InvalidCsvEncoding { line }),
        _ => ReadError::Refused(AppError::MalformedCsv { line }),
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
