//! Tolerated failures per task, after Step Functions Distributed Map's
//! `ToleratedFailurePercentage` and `ToleratedFailureCount`: a task whose failed items pass
//! either limit stops. Its items not yet started end `not_attempted`, and it ends `failed`
//! with `failure_reason: tolerated_failures_exceeded`, so a file BOS refuses row by row costs
//! a handful of BOS calls instead of one per row.
//!
//! "Pass" means *exceed*, as in Distributed Map: a count of 10 tolerates 10 failed items and
//! stops at the 11th; a percentage is of the task's total items (failed ÷ total), so 10 % of a
//! 2,000-item task stops at the 201st failure. No limit (the default) tolerates everything.

/// A tolerance parameter that does not parse; names the parameter, never its value (the
/// api answers `400 invalid_query_parameter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid query parameter {0}")]
pub struct InvalidTolerance(pub &'static str);

/// The limits a task was created with; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tolerance {
    /// 0 to 100: the share of the task's items that may fail.
    pub percent: Option<f64>,
    /// The number of items that may fail.
    pub count: Option<u32>,
}

impl Tolerance {
    /// Reads the create's query parameters `tolerated_failure_percent` (a number from 0 to
    /// 100) and `tolerated_failure_count` (a whole number from 0). Anything else is a 400 that
    /// names the parameter, never its value.
    pub fn parse(percent: Option<&str>, count: Option<&str>) -> Result<Self, InvalidTolerance> {
        let percent = percent
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
                    .ok_or(InvalidTolerance("tolerated_failure_percent"))
            })
            .transpose()?;
        let count = count
            .map(|c| {
                c.trim()
                    .parse::<u32>()
                    .map_err(|_| InvalidTolerance("tolerated_failure_count"))
            })
            .transpose()?;
        Ok(Self { percent, count })
    }

    /// The most failed items a task of `total` items tolerates, if it has a limit.
    pub fn allowed(&self, total: u32) -> Option<u32> {
        let by_share = self
            .percent
            .map(|p| (p * f64::from(total) / 100.0).floor() as u32);
        match (self.count, by_share) {
            (Some(c), Some(s)) => Some(c.min(s)),
            (c, s) => c.or(s),
        }
    }

    /// Whether `failed` items out of `total` pass either limit.
    pub fn exceeded(&self, failed: u32, total: u32) -> bool {
        let over_count = self.count.is_some_and(|c| failed > c);
        let over_share = self
            .percent
            .is_some_and(|p| f64::from(failed) * 100.0 > p * f64::from(total));
        over_count || over_share
    }

    pub fn is_unlimited(&self) -> bool {
        self.percent.is_none() && self.count.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_passed_when_exceeded_not_when_reached() {
        let cases = [
            // (percent, count, failed, total, exceeded)
            (None, None, 2_000, 2_000, false),
            (Some(10.0), None, 200, 2_000, false),
            (Some(10.0), None, 201, 2_000, true),
            (Some(0.0), None, 1, 2_000, true),
            (Some(0.0), None, 0, 2_000, false),
            (Some(100.0), None, 2_000, 2_000, false),
            (None, Some(10), 10, 2_000, false),
            (None, Some(10), 11, 2_000, true),
            (None, Some(0), 1, 5, true),
            (Some(50.0), Some(3), 4, 100, true),
            (Some(2.5), Some(100), 3, 100, true),
        ];
        for (percent, count, failed, total, want) in cases {
            let t = Tolerance { percent, count };
            assert_eq!(
                t.exceeded(failed, total),
                want,
                "{percent:?} {count:?} {failed}/{total}"
            );
            // `allowed` is the same rule, as a number: exceeded means failed > allowed.
            let by_allowed = t.allowed(total).is_some_and(|a| failed > a);
            assert_eq!(by_allowed, want, "{percent:?} {count:?} {failed}/{total}");
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let ok = Tolerance::parse(Some("12.5"), Some("7")).unwrap();
        assert_eq!((ok.percent, ok.count), (Some(12.5), Some(7)));
        assert!(Tolerance::parse(None, None).unwrap().is_unlimited());
        for bad in ["-1", "100.1", "NaN", "inf", "ten", ""] {
            let e = Tolerance::parse(Some(bad), None).unwrap_err();
            assert_eq!(e, InvalidTolerance("tolerated_failure_percent"), "{bad}");
        }
        for bad in ["-1", "1.5", "99999999999", "x"] {
            let e = Tolerance::parse(None, Some(bad)).unwrap_err();
            assert_eq!(e, InvalidTolerance("tolerated_failure_count"), "{bad}");
        }
    }
}
