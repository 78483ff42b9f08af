//! Time: the one timestamp every output carries (the source date), read from
//! `SOURCE_DATE_EPOCH`, and RFC 3339 text for timestamps, written and read with `jiff`.
//!
//! Precedence (see README "Determinism"): `SOURCE_DATE_EPOCH` from the environment, then
//! `x-cairn.source-date-epoch` in the spec, then a value derived only from the pinned inputs:
//! the newest `created` time among the component image configs, or 0 when none has one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a source date is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceDateError {
    #[error(
        "SOURCE_DATE_EPOCH {value:?} is not a whole number of seconds since 1970 (0..=8589934591)"
    )]
    Malformed { value: String },
    #[error("SOURCE_DATE_EPOCH is not valid UTF-8")]
    NotUnicode,
}

/// Seconds since the Unix epoch, clamping every mtime in an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceDate(u64);

/// Largest value a ustar/newc header can hold without extensions (8^11 - 1).
pub const MAX_SOURCE_DATE: u64 = 0o77777777777;

impl SourceDate {
    pub const ZERO: SourceDate = SourceDate(0);

    pub fn new(secs: u64) -> Result<SourceDate, SourceDateError> {
        if secs > MAX_SOURCE_DATE {
            return Err(SourceDateError::Malformed { value: secs.to_string() });
        }
        Ok(SourceDate(secs))
    }

    /// Parses the `SOURCE_DATE_EPOCH` format: decimal digits only.
    pub fn parse(value: &str) -> Result<SourceDate, SourceDateError> {
        let err = || SourceDateError::Malformed { value: value.to_string() };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let secs: u64 = value.parse().map_err(|_| err())?;
        SourceDate::new(secs).map_err(|_| err())
    }

    /// `SOURCE_DATE_EPOCH` from the environment: unset or empty means none; anything but
    /// decimal seconds is an error.
    pub fn from_env() -> Result<Option<SourceDate>, SourceDateError> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => SourceDate::parse(&v).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(SourceDateError::NotUnicode),
        }
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    /// Clamps an input mtime: nothing in an image is newer than the source date.
    pub fn clamp(self, mtime: u64) -> u64 {
        mtime.min(self.0)
    }
}

impl fmt::Display for SourceDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a source date.
pub fn rfc3339(date: SourceDate) -> String {
    // Every source date (at most MAX_SOURCE_DATE, in the year 2242) is a valid jiff
    // timestamp; the fallback is never taken.
    match i64::try_from(date.secs()).map(jiff::Timestamp::from_second) {
        Ok(Ok(t)) => t.to_string(),
        _ => format!("@{}", date.secs()),
    }
}

/// Converts an RFC 3339 timestamp such as `2024-01-02T03:04:05Z` (fractional seconds,
/// dropped, and numeric offsets allowed) to seconds since the epoch. Returns `None` for
/// anything else and for times before 1970. jiff's parser also takes the ISO 8601 forms
/// RFC 3339 leaves out (such as omitted seconds) and reads a leap second `:60` as `:59`.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t: jiff::Timestamp = s.parse().ok()?;
    if t < jiff::Timestamp::UNIX_EPOCH {
        return None;
    }
    u64::try_from(t.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_seconds_only() {
        assert_eq!(SourceDate::parse("0").unwrap().secs(), 0);
        assert_eq!(SourceDate::parse("1700000000").unwrap().secs(), 1_700_000_000);
        for bad in ["", " 1", "1.5", "-1", "1e9", "0x10", "99999999999999999999"] {
            assert!(SourceDate::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn clamps_newer_mtimes_only() {
        let sd = SourceDate::new(100).unwrap();
        assert_eq!(sd.clamp(50), 50);
        assert_eq!(sd.clamp(500), 100);
    }

    #[test]
    fn rfc3339_round_trips() {
        assert_eq!(rfc3339(SourceDate::ZERO), "1970-01-01T00:00:00Z");
        let d = SourceDate::new(1_700_000_000).unwrap();
        assert_eq!(rfc3339(d), "2023-11-14T22:13:20Z");
        for secs in [1, 59, 86_399, 951_782_400, 4_102_444_800, MAX_SOURCE_DATE] {
            let s = rfc3339(SourceDate::new(secs).unwrap());
            assert_eq!(s.len(), 20, "{s}");
            assert_eq!(parse_rfc3339(&s), Some(secs), "{s}");
        }
        assert_eq!(rfc3339(SourceDate::new(951_782_400).unwrap()), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(SourceDate::new(MAX_SOURCE_DATE).unwrap()), "2242-03-16T12:56:31Z");
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20-01:30"), Some(1_700_005_400));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None, "no offset");
        assert_eq!(parse_rfc3339("2023-02-30T00:00:00Z"), None, "no such day");
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None, "before 1970");
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.5Z"), None, "before 1970");
    }
}
