//! The verification report: one entry per check, the artifacts with their digests, and the
//! verdict. Its JSON form (`cairn verify --json`) is a stable interface, described by
//! `attestations/verify-report.schema.json`; the human form is not.

use std::io::{self, Write};

use serde::Serialize;

/// One check and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`signature`, `artifact`, `threshold`, …).
    pub name: String,
    pub ok: bool,
    /// What was found: on failure, the reason in one plain line.
    pub detail: String,
}

/// An artifact as found on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtifactDigest {
    pub name: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// Everything verification found, in the order it was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
    pub artifacts: Vec<ArtifactDigest>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    verdict: &'static str,
    reason: Option<String>,
    checks: &'a [Check],
    artifacts: &'a [ArtifactDigest],
}

impl Report {
    pub(crate) fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), ok: true, detail: detail.into() });
    }

    pub(crate) fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), ok: false, detail: detail.into() });
    }

    /// `name: detail` of the first failed check.
    pub fn first_failure(&self) -> Option<String> {
        self.checks.iter().find(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail))
    }

    /// Whether any check failed.
    pub fn has_failures(&self) -> bool {
        self.checks.iter().any(|c| !c.ok)
    }

    /// The report as JSON (one document, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let failed = self.has_failures() || self.checks.is_empty();
        let doc = JsonReport {
            verdict: if failed { "rejected" } else { "verified" },
            reason: if failed {
                Some(self.first_failure().unwrap_or_else(|| "nothing was checked".into()))
            } else {
                None
            },
            checks: &self.checks,
            artifacts: &self.artifacts,
        };
        let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// One line per check, then the artifacts, then the verdict.
    pub fn write_human(&self, mut out: impl Write) -> io::Result<()> {
        for c in &self.checks {
            writeln!(out, "{} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail)?;
        }
        for a in &self.artifacts {
            writeln!(out, "     sha256:{}  {}", a.sha256, a.name)?;
        }
        match (self.has_failures() || self.checks.is_empty(), self.first_failure()) {
            (false, _) => writeln!(out, "verified"),
            (true, Some(reason)) => writeln!(out, "rejected: {reason}"),
            (true, None) => writeln!(out, "rejected: nothing was checked"),
        }
    }
}
