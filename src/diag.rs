//! How errors reach a person: one rendering of an error chain, and the marker that tells a
//! verdict ("a check said no", exit 1) from an error (exit 2).
//!
//! Both the CLI and the payload's init print errors; neither owns the other, so the
//! rendering lives here, below both.

/// `outer: inner: cause`, skipping a cause whose text an outer message already quotes
/// (several library errors include their source in their own message).
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A check said no: the command worked, and its answer is "rejected" (a stale lock, a
/// failed verification, a corrupt store). Returned as an error so that callers stop, but
/// the CLI exits 1 for it and prints only its message, without the context around it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    message: String,
}

impl Rejection {
    pub fn new(message: impl Into<String>) -> Rejection {
        Rejection { message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_is_not_repeated() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(inner).context("writing x: disk on fire").context("building y");
        assert_eq!(render_error(&e), "building y: writing x: disk on fire");
    }
}
