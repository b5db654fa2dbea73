//! The rows of an uploaded file, CSV or JSON Lines, read as a stream in constant memory:
//! each row as the JSON object an inline body would hold for it, with its line.
//!
//! A CSV is read as an inline CSV body is (`csv_input`: header, BOM, CRLF, quoting, line
//! numbers), and a CSV that stops making sense refuses the whole file. A JSON Lines file holds
//! one object a line; since its lines are independent, a line that is not a JSON object is a
//! problem of that row only. In both, a line longer than [`MAX_LINE_BYTES`] stops the read:
//! no beneficiary is near that long, and a file without line ends must not fill memory.

use crate::csv_input::{CsvStream, ReadError};
use crate::error::AppError;
use crate::error_body::ErrorDetail;
use crate::read_tally::{line_too_long, ReadTally};
use crate::upload::FileFormat;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};

/// The longest line a file may have (64 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One row: the object it holds, or why it holds none (JSON Lines only), and its line.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub line: u64,
    pub value: Result<Value, ErrorDetail>,
}

pub enum FileRows<R: Read> {
    Csv(CsvStream<R>),
    Ndjson(NdjsonStream<R>),
}

impl<R: Read> FileRows<R> {
    /// Starts reading; a CSV's header is read and checked here.
    pub fn open(format: FileFormat, inner: R) -> Result<Self, ReadError> {
        Ok(match format {
            FileFormat::Csv => Self::Csv(CsvStream::new(inner, MAX_LINE_BYTES)?),
            FileFormat::Ndjson => Self::Ndjson(NdjsonStream::new(inner)),
        })
    }

    pub fn next_row(&mut self) -> Result<Option<FileRow>, ReadError> {
        match self {
            Self::Csv(csv) => Ok(csv.next_row()?.map(|(value, line)| FileRow {
                line,
                value: Ok(value),
            })),
            Self::Ndjson(lines) => lines.next_row(),
        }
    }

    fn tally(&self) -> &ReadTally<R> {
        match self {
            Self::Csv(csv) => csv.tally(),
            Self::Ndjson(lines) => lines.reader.get_ref(),
        }
    }

    /// Bytes read so far (all of them, once `next_row` gave `None`).
    pub fn bytes(&self) -> u64 {
        self.tally().bytes_read()
    }

    /// SHA-256 of the bytes read so far, base64.
    pub fn sha256_base64(&self) -> String {
        self.tally().sha256_base64()
    }
}

pub struct NdjsonStream<R: Read> {
    reader: BufReader<ReadTally<R>>,
    buf: Vec<u8>,
    line: u64,
}

impl<R: Read> NdjsonStream<R> {
    fn new(inner: R) -> Self {
        Self {
            reader: BufReader::new(ReadTally::new(inner, MAX_LINE_BYTES).without_offsets()),
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The next line that is not blank.
    fn next_row(&mut self) -> Result<Option<FileRow>, ReadError> {
        loop {
            self.buf.clear();
            let n =
                self.reader.read_until(b'\n', &mut self.buf).map_err(|e| {
                    match line_too_long(&e) {
                        Some(long) => ReadError::Refused(AppError::LineTooLong {
                            line: long.line,
                            max_bytes: long.max,
                        }),
                        None => ReadError::Io(e),
                    }
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(FileRow {
                line: self.line,
                value: row_value(text),
            }));
        }
    }
}

/// One JSON Lines row, checked as strictly as an inline body.
fn row_value(text: &[u8]) -> Result<Value, ErrorDetail> {
    let problem = |code: &str, message: &str| ErrorDetail {
        index: None,
        line: None,
        external_id: None,
        field: None,
        code: code.to_owned(),
        message: message.to_owned(),
    };
    if std::str::from_utf8(text).is_err() {
        return Err(problem("invalid_encoding", "This line is not UTF-8 text."));
    }
    match crate::strict_json::parse(text) {
        Ok(value) => Ok(value),
        Err(crate::strict_json::StrictJsonError::DuplicateKey) => Err(problem(
            "duplicate_json_key",
            "This line's object has the same key twice.",
        )),
        Err(_) => Err(problem("malformed_json", "This line is not valid JSON.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(format: FileFormat, data: &[u8]) -> Result<Vec<FileRow>, String> {
        let mut rows = FileRows::open(format, data).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(row) = rows.next_row().map_err(|e| e.to_string())? {
            out.push(row);
        }
        Ok(out)
    }

    #[test]
    fn json_lines_rows_have_their_lines_and_bad_lines_are_row_problems() {
        let data = b"{\"name\": \"A\"}\r\n\n[1\n{\"a\": 1, \"a\": 2}\n\xff\n{\"name\": \"B\"}";
        let found = rows(FileFormat::Ndjson, data).unwrap();
        let summary: Vec<(u64, String)> = found
            .iter()
            .map(|r| {
                let what = match &r.value {
                    Ok(v) => v["name"].as_str().unwrap_or("?").to_owned(),
                    Err(d) => d.code.clone(),
                };
                (r.line, what)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, "A".to_owned()),
                (3, "malformed_json".to_owned()),
                (4, "duplicate_json_key".to_owned()),
                (5, "invalid_encoding".to_owned()),
                (6, "B".to_owned()),
            ]
        );
    }

    #[test]
    fn a_line_past_the_limit_refuses_the_file_at_its_line() {
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        let ndjson = [&b"{\"name\": \"A\"}\n"[..], &long].concat();
        let csv = [&b"name,country,currency,iban\nA,DE,EUR,X\n"[..], &long].concat();
        for (format, file) in [(FileFormat::Ndjson, ndjson), (FileFormat::Csv, csv)] {
            let err = rows(format, &file).unwrap_err();
            assert!(
                err.contains("is longer than 65536 bytes"),
                "{format:?}: {err}"
            );
        }
    }

    #[test]
    fn a_csv_file_reads_as_an_inline_body_and_hashes_every_byte() {
        let data = "\u{feff}name,country,currency,iban\r\nA,DE,EUR,X\r\n\"B\r\nC\",DE,EUR,Y\r\n";
        let mut file = FileRows::open(FileFormat::Csv, data.as_bytes()).unwrap();
        let mut lines = Vec::new();
        while let Some(row) = file.next_row().unwrap() {
            lines.push(row.line);
        }
        assert_eq!(lines, [2, 3]);
        assert_eq!(file.bytes(), data.len() as u64);
        assert_eq!(file.sha256_base64().len(), 44);
    }
}
