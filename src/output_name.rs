//! The one rule for names of build outputs and of the files that sit beside them (subjects
//! of an attestation, members of a verified-boot payload disk): a plain file name.

use std::fmt;

/// A plain file name: not empty, no `/` or NUL, and not starting with `.` (so neither `.`,
/// `..` nor a hidden file such as the build's `.cairn-build-*` staging directory).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutputName(String);

/// A name that breaks the [`OutputName`] rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a plain file name (it must be non-empty, without '/', and not start with '.')"
)]
pub struct BadName(pub String);

impl OutputName {
    pub fn parse(name: &str) -> Result<OutputName, BadName> {
        if name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.') {
            return Err(BadName(name.to_string()));
        }
        Ok(OutputName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This name with a suffix, e.g. `NAME.tar` or `NAME-kernel`: still a plain file name,
    /// as long as the suffix has no `/` (the suffixes are cairn's own constants).
    pub fn with_suffix(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.0)
    }
}

impl fmt::Display for OutputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for OutputName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for OutputName {
    type Err = BadName;
    fn from_str(s: &str) -> Result<OutputName, BadName> {
        OutputName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for good in ["hello", "hello.tar", "a-b_c.1", "x..y"] {
            assert_eq!(OutputName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "/abs", "a\0b"] {
            assert_eq!(OutputName::parse(bad), Err(BadName(bad.to_string())), "{bad:?}");
        }
    }
}
