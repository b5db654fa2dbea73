//! Collects rows and renders the markdown table with the machine, date and commit.

use std::fmt::Write;

pub struct Row {
    pub what: String,
    pub value: String,
    pub target: String,
    pub verdict: &'static str,
}

pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    pub fn new() -> Self {
        Self {
            rows: vec![],
            notes: vec![],
        }
    }

    /// A measured row with a target: `met` says whether it was reached.
    pub fn check(
        &mut self,
        what: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        self.push(Row {
            what: what.into(),
            value: value.into(),
            target: target.into(),
            verdict: if met { "met" } else { "NOT met" },
        });
    }

    /// Keeps a row, and shows it on stderr at once: a run that fails later loses nothing.
    fn push(&mut self, row: Row) {
        eprintln!(
            "| {} | {} | {} | {} |",
            row.what, row.value, row.target, row.verdict
        );
        self.rows.push(row);
    }

    /// A measured row without a target.
    pub fn info(&mut self, what: impl Into<String>, value: impl Into<String>) {
        self.push(Row {
            what: what.into(),
            value: value.into(),
            target: String::new(),
            verdict: "",
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let commit = std::env::var("GIT_COMMIT").unwrap_or_else(|_| "unknown".into());
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(out, "Written by `scripts/bench`. Machine: {}; {} cores; {}. Date: {date}. Commit: {commit}.\n", cpu(), cores(), memory());
        let _ = writeln!(out, "| measure | value | target | |\n|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.what, r.value, r.target, r.verdict
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out);
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// The heading of the hand-written notes at the end of docs/benchmarks.md: earlier partial
/// runs and profiles, each dated. A run that rewrites the table keeps them, since they hold
/// what no single run prints (A/B runs, profiles, what was tried and dropped).
pub const KEPT_NOTES_HEADING: &str = "## Earlier runs";

/// `table` (a fresh [`Report::render`]) followed by the kept notes of `previous` (the file it
/// replaces), if it has any.
pub fn with_kept_notes(table: &str, previous: &str) -> String {
    let kept = previous
        .lines()
        .position(|line| line.trim_end() == KEPT_NOTES_HEADING)
        .map(|at| previous.lines().skip(at).collect::<Vec<_>>().join("\n"));
    match kept {
        Some(notes) => format!("{}\n\n{notes}\n", table.trim_end()),
        None => table.to_owned(),
    }
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .map(|kb| format!("{} GiB RAM", kb / 1024 / 1024))
        .unwrap_or_default()
}

/// Median of some durations or numbers.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_table_keeps_the_notes_under_their_heading_and_drops_the_old_table() {
        let previous = "# Benchmarks\n\n| old row |\n\n## Earlier runs\n\n- an A/B run\n";
        let written = with_kept_notes("# Benchmarks\n\n| new row |\n", previous);
        assert_eq!(
            written,
            "# Benchmarks\n\n| new row |\n\n## Earlier runs\n\n- an A/B run\n"
        );
    }

    #[test]
    fn without_the_heading_the_table_is_written_alone() {
        let table = "# Benchmarks\n\n| new row |\n";
        assert_eq!(
            with_kept_notes(table, "# Benchmarks\n\n| old row |\n"),
            table
        );
        assert_eq!(with_kept_notes(table, ""), table);
    }
}
