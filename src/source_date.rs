//! The one timestamp every output carries.
//!
//! Precedence (see README "Determinism"): `SOURCE_DATE_EPOCH` from the environment, then
//! `x-cairn.source-date-epoch` in the spec, then a value derived only from the pinned inputs:
//! the newest `created` time among the component image configs, or 0 when none has one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a source date is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("SOURCE_DATE_EPOCH {value:?} is not a whole number of seconds since 1970 (0..=8589934591)")]
pub struct SourceDateError {
    pub value: String,
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
            return Err(SourceDateError { value: secs.to_string() });
        }
        Ok(SourceDate(secs))
    }

    /// Parses the `SOURCE_DATE_EPOCH` format: decimal digits only.
    pub fn parse(value: &str) -> Result<SourceDate, SourceDateError> {
        let err = || SourceDateError { value: value.to_string() };
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let secs: u64 = value.parse().map_err(|_| err())?;
        SourceDate::new(secs).map_err(|_| err())
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

/// Converts an RFC 3339 UTC timestamp such as `2024-01-02T03:04:05Z` (fractional seconds
/// and numeric offsets allowed) to seconds since the epoch. Returns `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hour * 3600 + min * 60 + sec - offset;
    u64::try_from(secs).ok()
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
    fn rfc3339_known_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(1_700_000_000));
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
