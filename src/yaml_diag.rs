//! Diagnostics for YAML inputs (spec and policy): serde_norway's error turned into an
//! [`InvalidYaml`] with `line`, `column`, a message without the location suffix, and a
//! "did you mean" hint for misspelt field names. Both the spec's and the policy's error
//! type carry it, so the two inputs report problems the same way.

/// A YAML input (spec or policy) that is malformed, has an unknown field or a wrong type,
/// or whose value failed a check: printed as `file:line:col: message`, then the hint (if
/// any) as its own paragraph. `line` and `column` are 1-based and present whenever the
/// parser knows them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct InvalidYaml {
    pub source_name: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl InvalidYaml {
    /// A problem with the document as a whole, which has no position.
    pub fn unplaced(source_name: &str, message: impl Into<String>) -> InvalidYaml {
        InvalidYaml {
            source_name: source_name.to_string(),
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }

    /// serde_norway's error, its message (which ends in " at line L column C") split into
    /// its parts, with a "did you mean" hint for a misspelt field name.
    pub fn from_serde(source_name: &str, err: &serde_norway::Error) -> InvalidYaml {
        let mut message = err.to_string();
        let location = err.location();
        if let Some(loc) = &location {
            // The location goes in front of the message instead.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(pos) = message.find(&suffix) {
                message.replace_range(pos..pos + suffix.len(), "");
            }
        }
        let hint = unknown_field_hint(&message);
        InvalidYaml {
            source_name: source_name.to_string(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
            hint,
        }
    }

    fn render(&self) -> String {
        let (name, message) = (&self.source_name, &self.message);
        let mut out = match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{name}:{l}:{c}: {message}"),
            (Some(l), None) => format!("{name}:{l}: {message}"),
            _ => format!("{name}: {message}"),
        };
        if let Some(h) = &self.hint {
            out.push_str("\n\n");
            out.push_str(h);
        }
        out
    }
}

/// A YAML input larger than its limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {what} is {len} bytes, more than the limit of {limit} bytes")]
pub struct TooLarge {
    pub source_name: String,
    /// What the input is: `spec` or `policy`.
    pub what: &'static str,
    pub len: usize,
    pub limit: usize,
}

/// Deserializes `yaml`, the `what` (`spec`, `policy`) read from `source_name`, refusing
/// more than `limit` bytes before the parser sees any of it.
pub fn parse_bounded<T, E>(
    source_name: &str,
    what: &'static str,
    yaml: &str,
    limit: usize,
) -> Result<T, E>
where
    T: serde::de::DeserializeOwned,
    E: From<TooLarge> + From<InvalidYaml>,
{
    if yaml.len() > limit {
        let source_name = source_name.to_string();
        return Err(TooLarge { source_name, what, len: yaml.len(), limit }.into());
    }
    serde_norway::from_str(yaml).map_err(|e| InvalidYaml::from_serde(source_name, &e).into())
}

/// The unknown name in serde's "unknown field `x`, expected one of `a`, `b`" message.
pub fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split_once('`')?.0)
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" message, suggests the
/// closest expected name when it is a plausible typo (case-insensitive), or the one it is
/// a truncation of.
pub fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (unknown, rest) = rest.split_once('`')?;
    let candidates = rest.split_once("expected")?.1;
    let names = || candidates.split('`').skip(1).step_by(2);
    let lower = unknown.to_lowercase();
    let best = names().map(|c| (edit_distance(&lower, &c.to_lowercase()), c)).min()?;
    if best.0 <= (unknown.chars().count() / 3).max(1) {
        return Some(format!("hint: did you mean `{}`?", best.1));
    }
    // A truncated name (`source-date` for `source-date-epoch`).
    if unknown.len() >= 4
        && let Some(c) = names().find(|c| c.starts_with(unknown))
    {
        return Some(format!("hint: did you mean `{c}`?"));
    }
    None
}

/// Levenshtein distance over chars. Inputs are short field names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let v = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev[b.len()]
}
