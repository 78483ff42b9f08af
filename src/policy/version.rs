//! Debian package versions and version ranges, for `packages.deny` rules.
//!
//! [`compare`] follows dpkg's ordering (`lib/dpkg/version.c`, `dpkg_version_compare`):
//! `[epoch:]upstream[-revision]`, epochs compared as numbers, then upstream, then revision,
//! each with `verrevcmp`: runs of non-digits compared character by character where `~`
//! sorts before everything (even the end of the string), letters before non-letters, and
//! runs of digits compared as numbers. Alpine versions (`1.2.3-r0`) are compared with the
//! same rules, which order them as apk does for the common shapes.
//!
//! Why not the `debversion` crate: it orders an empty digit run before `0` where dpkg
//! takes it as `0` (dpkg says `1.` = `1.0` and `1a` = `1a0`; debversion says less, see
//! `dpkg_ordering`), it accepts versions dpkg refuses (`-1`, `1.0-`, `a:1.0`), and it pulls
//! chrono, lazy-regex and num-bigint into the build for these 60 lines. A deny rule must
//! order versions exactly as the package manager does.

use std::cmp::Ordering;
use std::fmt;

/// Why a version or a version range does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("version {text:?}: {reason}")]
    Version { text: String, reason: String },
    #[error("empty version range; use \"*\" for every version")]
    EmptyRange,
    #[error("version constraint {part:?} must start with <, <=, =, >= or > (or be \"*\")")]
    NoOperator { part: String },
}

/// A parsed `[epoch:]upstream[-revision]` version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    epoch: u64,
    upstream: String,
    revision: String,
    text: String,
}

impl Version {
    /// Parses a version as dpkg does: the epoch is the digits before the first `:`, the
    /// revision everything after the last `-`. Empty parts and characters dpkg refuses
    /// (anything but alphanumerics and `.+-~:`) are errors.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let bad =
            |why: &str| VersionError::Version { text: text.to_owned(), reason: why.to_owned() };
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(c) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || ".+-~:".contains(*c)))
        {
            return Err(bad(&format!("character {c:?} is not allowed in a Debian version")));
        }
        let (epoch, rest) = match text.split_once(':') {
            Some((e, rest)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the epoch must be a number"));
                }
                (e.parse::<u64>().map_err(|_| bad("the epoch is too large"))?, rest)
            }
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(bad("the upstream version is empty"));
        }
        if rest.contains('-') && revision.is_empty() {
            return Err(bad("the revision after '-' is empty"));
        }
        if upstream.contains(':') {
            return Err(bad("more than one ':'"));
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_owned(),
            revision: revision.to_owned(),
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// dpkg's weight of one character in a non-digit run (`None` is the end of the string).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while a.get(i).is_some_and(|c| !c.is_ascii_digit())
            || b.get(j).is_some_and(|c| !c.is_ascii_digit())
        {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while a.get(i).is_some_and(u8::is_ascii_digit) && b.get(j).is_some_and(u8::is_ascii_digit) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Compares two version strings with dpkg's rules.
pub fn compare(a: &Version, b: &Version) -> Ordering {
    a.cmp(b)
}

/// A comparison operator of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// A version range: `*` (every version) or constraints joined by commas, all of which must
/// hold, e.g. `<1.2.3`, `>=1.0, <1.1`, `=2:1.0-3`. Operators: `<`, `<=`, `=`, `>=`, `>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRange {
    constraints: Vec<(Op, Version)>,
    text: String,
}

impl VersionRange {
    /// Parses a range (see the type docs).
    pub fn parse(text: &str) -> Result<VersionRange, VersionError> {
        let trimmed = text.trim();
        if trimmed == "*" {
            return Ok(VersionRange { constraints: Vec::new(), text: trimmed.to_owned() });
        }
        if trimmed.is_empty() {
            return Err(VersionError::EmptyRange);
        }
        let mut constraints = Vec::new();
        for part in trimmed.split(',') {
            let part = part.trim();
            let (op, rest) = if let Some(r) = part.strip_prefix("<=") {
                (Op::Le, r)
            } else if let Some(r) = part.strip_prefix(">=") {
                (Op::Ge, r)
            } else if let Some(r) = part.strip_prefix('<') {
                (Op::Lt, r)
            } else if let Some(r) = part.strip_prefix('>') {
                (Op::Gt, r)
            } else if let Some(r) = part.strip_prefix('=') {
                (Op::Eq, r)
            } else {
                return Err(VersionError::NoOperator { part: part.to_owned() });
            };
            constraints.push((op, Version::parse(rest.trim())?));
        }
        Ok(VersionRange { constraints, text: trimmed.to_owned() })
    }

    /// Whether `v` satisfies every constraint.
    pub fn contains(&self, v: &Version) -> bool {
        self.constraints.iter().all(|(op, bound)| {
            let o = v.cmp(bound);
            match op {
                Op::Lt => o == Ordering::Less,
                Op::Le => o != Ordering::Greater,
                Op::Eq => o == Ordering::Equal,
                Op::Ge => o != Ordering::Less,
                Op::Gt => o == Ordering::Greater,
            }
        })
    }

    /// Whether this is `*`.
    pub fn is_any(&self) -> bool {
        self.constraints.is_empty()
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Pairs whose order `dpkg --compare-versions` confirms (dpkg 1.21, bookworm).
    #[test]
    fn dpkg_ordering() {
        use Ordering::{Equal, Less};
        let cases = [
            ("1.0~rc1", Less, "1.0"),
            ("1.0~~", Less, "1.0~"),
            ("1.0~", Less, "1.0"),
            ("1.0", Less, "1.0a"),
            ("1.0", Less, "1.0+b1"),
            ("1.0a", Less, "1.0+"),
            ("1.0-1", Less, "1.0-2"),
            ("1.0-1", Less, "1.0-1ubuntu1"),
            ("1.0-9", Less, "1.0-10"),
            ("1.9", Less, "1.10"),
            ("9.9", Less, "1:0.1"),
            ("1:1.0", Less, "2:0.1"),
            ("2.30-5", Less, "2.30-5+deb12u1"),
            ("3.0.11-1~deb12u1", Less, "3.0.11-1~deb12u2"),
            ("3.0.11-1~deb12u2", Less, "3.0.11-1"),
            ("0.9", Less, "1.0-0"),
            ("a", Less, "b"),
            ("1.0.0", Less, "1.0.0.0"),
            ("1.2.3-r0", Less, "1.2.3-r1"),
            ("1.0", Equal, "1.00"),
            ("0:1.0", Equal, "1.0"),
            ("1.0-0", Equal, "1.0-0"),
            ("1.01", Equal, "1.1"),
            ("1.2.3", Equal, "1.2.3-0"),
            // An empty digit run is 0 (where the debversion crate says Less).
            ("1.", Equal, "1.0"),
            ("1a", Equal, "1a0"),
        ];
        for (a, o, b) in cases {
            assert_eq!(compare(&v(a), &v(b)), o, "{a} {o:?} {b}");
            assert_eq!(compare(&v(b), &v(a)), o.reverse(), "{b} {:?} {a}", o.reverse());
        }
    }

    /// dpkg's answer for `a` against `b`, or `None` when dpkg is not installed.
    fn dpkg_order(a: &str, b: &str) -> Option<Ordering> {
        let holds = |op: &str| {
            std::process::Command::new("dpkg").args(["--compare-versions", a, op, b]).status()
        };
        match (holds("lt").ok()?.success(), holds("eq").ok()?.success()) {
            (true, _) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Equal),
            (false, false) => Some(Ordering::Greater),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The ordering is dpkg's own, checked against `dpkg --compare-versions` on
        /// versions made of the parts that matter (`~`, letters, `+`, `.`, zeros, epochs).
        #[test]
        fn same_order_as_dpkg(
            a in "([0-9]:)?[0-9][0-9a~+.]{0,5}(-[0-9a~+.]{1,3})?",
            b in "([0-9]:)?[0-9][0-9a~+.]{0,5}(-[0-9a~+.]{1,3})?",
        ) {
            let Some(want) = dpkg_order(&a, &b) else {
                assert!(std::env::var_os("CI").is_none(), "dpkg is needed under CI");
                return Ok(());
            };
            proptest::prop_assert_eq!(compare(&v(&a), &v(&b)), want, "{} vs {}", a, b);
        }
    }

    #[test]
    fn bad_versions() {
        for bad in ["", "a:1.0", ":1.0", "1.0-", "-1", "1.0 beta", "1:2:3", "1_0"] {
            assert!(Version::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn ranges() {
        let r = VersionRange::parse(">=1.0, <1.1").unwrap();
        assert!(r.contains(&v("1.0")));
        assert!(r.contains(&v("1.0.9-3")));
        assert!(r.contains(&v("1.1~rc1")));
        assert!(!r.contains(&v("1.1")));
        assert!(!r.contains(&v("0.9")));
        assert!(VersionRange::parse("*").unwrap().contains(&v("99")));
        assert!(VersionRange::parse("*").unwrap().is_any());
        let lt = VersionRange::parse("<3.0.11-1~deb12u2").unwrap();
        assert!(lt.contains(&v("3.0.11-1~deb12u1")));
        assert!(!lt.contains(&v("3.0.11-1")));
        assert!(VersionRange::parse("=1:2.0").unwrap().contains(&v("1:2.0")));
        assert!(VersionRange::parse(">2").unwrap().contains(&v("10")));
        assert!(VersionRange::parse("<=2").unwrap().contains(&v("2")));
        for bad in ["", "1.0", "<", "<1.0,", "~1.0", "<1.0 beta"] {
            assert!(VersionRange::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
