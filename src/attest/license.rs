//! Declared licences as SBOMs can carry them.
//!
//! Packages declare licences in free text (`MIT`, `GPL-2.0-or-later AND LGPL-2.1-only`, but
//! also `GPL2+`, `custom`, `BSD`). SPDX and CycloneDX validators reject an expression that
//! names an unknown licence id, so cairn is conservative: a declaration is passed on as an
//! SPDX expression only when it parses as one (`AND`, `OR`, `WITH`, parentheses) and every
//! id is in [`KNOWN_IDS`] (a list of common, non-deprecated SPDX ids). Anything else is kept
//! verbatim as an SPDX `LicenseRef-…` with the text as extracted licensing info, and as a
//! CycloneDX licence `name`.

use sha2::{Digest as _, Sha256};

/// Common, non-deprecated SPDX licence ids (<https://spdx.org/licenses/>).
pub const KNOWN_IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FTL",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libtiff",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NCSA",
    "OFL-1.1",
    "OpenSSL",
    "PHP-3.01",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "Unicode-DFS-2016",
    "Unlicense",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// SPDX licence exceptions accepted after `WITH`.
pub const KNOWN_EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "GCC-exception-3.1",
    "LLVM-exception",
];

/// A licence declaration sorted into what an SBOM can say about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Declared {
    /// A valid SPDX expression of known ids, normalized to single spaces.
    Expression(String),
    /// Free text that is not such an expression, verbatim.
    Other(String),
}

impl Declared {
    /// Sorts a declaration; `None` for an empty one.
    pub fn classify(text: &str) -> Option<Declared> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let tokens = tokenize(text);
        let mut pos = 0;
        if expression(&tokens, &mut pos, 0) && pos == tokens.len() {
            Some(Declared::Expression(join(&tokens)))
        } else {
            Some(Declared::Other(text.to_string()))
        }
    }

    /// The value for SPDX `licenseDeclared`.
    pub fn spdx(&self) -> String {
        match self {
            Declared::Expression(e) => e.clone(),
            Declared::Other(text) => license_ref(text),
        }
    }
}

/// `LicenseRef-<text with [^A-Za-z0-9.-] replaced>`; when that replacement lost anything, a
/// short digest of the text keeps different texts apart.
pub fn license_ref(text: &str) -> String {
    let clean = super::sanitize_id(text);
    if clean == text {
        format!("LicenseRef-{clean}")
    } else {
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        match clean.trim_matches('-') {
            "" => format!("LicenseRef-{}", &hash[..8]),
            stem => format!("LicenseRef-{stem}-{}", &hash[..8]),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    text.replace('(', " ( ").replace(')', " ) ").split_whitespace().map(str::to_string).collect()
}

fn join(tokens: &[String]) -> String {
    tokens.join(" ").replace("( ", "(").replace(" )", ")")
}

/// expr := term (("AND" | "OR") term)*; term := "(" expr ")" | id ["WITH" exception]
fn expression(tokens: &[String], pos: &mut usize, depth: usize) -> bool {
    if depth > 16 || !term(tokens, pos, depth) {
        return false;
    }
    while let Some(op) = tokens.get(*pos) {
        if op != "AND" && op != "OR" {
            break;
        }
        *pos += 1;
        if !term(tokens, pos, depth) {
            return false;
        }
    }
    true
}

fn term(tokens: &[String], pos: &mut usize, depth: usize) -> bool {
    let Some(tok) = tokens.get(*pos) else { return false };
    *pos += 1;
    if tok == "(" {
        return expression(tokens, pos, depth + 1)
            && tokens.get(*pos).is_some_and(|t| t == ")")
            && {
                *pos += 1;
                true
            };
    }
    if !KNOWN_IDS.contains(&tok.as_str()) {
        return false;
    }
    if tokens.get(*pos).is_some_and(|t| t == "WITH") {
        *pos += 1;
        let ok = tokens.get(*pos).is_some_and(|e| KNOWN_EXCEPTIONS.contains(&e.as_str()));
        *pos += 1;
        return ok;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(s: &str) -> Option<Declared> {
        Some(Declared::Expression(s.to_string()))
    }

    #[test]
    fn classifies_conservatively() {
        assert_eq!(Declared::classify("MIT"), expr("MIT"));
        assert_eq!(Declared::classify("  "), None);
        assert_eq!(
            Declared::classify("GPL-2.0-or-later  AND (MIT OR  BSD-3-Clause)"),
            expr("GPL-2.0-or-later AND (MIT OR BSD-3-Clause)")
        );
        assert_eq!(
            Declared::classify("GPL-3.0-or-later WITH GCC-exception-3.1"),
            expr("GPL-3.0-or-later WITH GCC-exception-3.1")
        );
        for other in [
            "GPL2+",
            "custom",
            "MIT and BSD",
            "MIT AND",
            "(MIT",
            "MIT)",
            "MIT WITH Nope",
            "GPL-2.0",
            "mit",
            "MIT MIT",
        ] {
            assert_eq!(Declared::classify(other), Some(Declared::Other(other.into())), "{other}");
        }
    }

    #[test]
    fn license_refs_are_valid_and_distinct() {
        assert_eq!(license_ref("custom"), "LicenseRef-custom");
        let a = license_ref("GPL 2");
        let b = license_ref("GPL/2");
        assert_ne!(a, b);
        assert!(a.starts_with("LicenseRef-GPL-2-"));
        for r in [a, b, license_ref("((("), license_ref("é")] {
            let id = r.strip_prefix("LicenseRef-").unwrap();
            assert!(!id.is_empty());
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'), "{r}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}MIT{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(Declared::classify(&deep), Some(Declared::Other(_))));
    }
}
