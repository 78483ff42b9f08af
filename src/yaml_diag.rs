//! Diagnostics for YAML inputs (spec and policy): serde_norway's error turned into an
//! [`InvalidYaml`] with `line`, `column`, a message without the location suffix, and a
//! "did you mean" hint for misspelt field names. Both the spec's and the policy's error
//! type carry it, so the two inputs report problems the same way. It also bounds what a
//! YAML input may cost to deserialize: its length, and how far its aliases expand.

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
    check_aliases(source_name, yaml, limit)?;
    serde_norway::from_str(yaml).map_err(|e| InvalidYaml::from_serde(source_name, &e).into())
}

/// The most aliases (`*name`) one YAML input may hold.
pub const MAX_ALIASES: usize = 4096;

/// How many times its byte limit a YAML input may grow to once its aliases are expanded.
const MAX_EXPANSION: usize = 4;

/// Refuses a YAML input whose aliases would make deserializing it cost far more than its
/// length: more than [`MAX_ALIASES`] aliases, or an expanded size (each alias counted as
/// the whole value of its anchor) above [`MAX_EXPANSION`] times `limit`. serde_norway
/// expands every alias into a copy of its anchor's value and has no size bound of its own,
/// so a small input can otherwise take gigabytes ("billion laughs"). The check reads the
/// event stream only; an input this parser cannot read is left to serde_norway, whose
/// error the user sees as before.
fn check_aliases(source_name: &str, yaml: &str, limit: usize) -> Result<(), InvalidYaml> {
    use saphyr_parser::{Event, Parser};
    let max_size = limit.saturating_mul(MAX_EXPANSION);
    // The expanded size of each anchored node that is complete, by anchor id.
    let mut anchors: std::collections::HashMap<usize, usize> = Default::default();
    // The open collections: their anchor id and expanded size so far.
    let mut open: Vec<(usize, usize)> = Vec::new();
    // The expanded size of everything read so far (each node counted once, where it
    // first appears), and the number of aliases.
    let (mut expanded, mut aliases) = (0usize, 0usize);
    for item in Parser::new_from_str(yaml) {
        let Ok((event, span)) = item else { return Ok(()) };
        // Every node costs at least one unit, so empty values repeated still count.
        // The node's size, its anchor id (0 for none), and whether its size is new to
        // `expanded` (a closing collection's contents were counted as they arrived).
        let (size, anchor, new) = match event {
            Event::Scalar(value, _, anchor, _) => (value.len() + 1, anchor, true),
            Event::Alias(id) => {
                aliases += 1;
                (anchors.get(&id).copied().unwrap_or(1), 0, true)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                open.push((anchor, 1));
                expanded = expanded.saturating_add(1);
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some((anchor, size)) => (size, anchor, false),
                None => continue,
            },
            _ => continue,
        };
        if new {
            expanded = expanded.saturating_add(size);
        }
        if anchor != 0 {
            anchors.insert(anchor, size);
        }
        if let Some((_, parent)) = open.last_mut() {
            *parent = parent.saturating_add(size);
        }
        let message = if aliases > MAX_ALIASES {
            format!(
                "more than {MAX_ALIASES} YAML aliases; write the values out or use fewer anchors"
            )
        } else if expanded > max_size {
            format!(
                "YAML aliases expand this input to more than {max_size} bytes \
                 (each alias repeats its anchor's whole value); refusing to expand it"
            )
        } else {
            continue;
        };
        let mut invalid = InvalidYaml::unplaced(source_name, message);
        invalid.line = Some(span.start.line());
        invalid.column = Some(span.start.col() + 1);
        return Err(invalid);
    }
    Ok(())
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

#[cfg(test)]
mod alias_tests {
    use super::*;

    #[test]
    fn nested_aliases_are_counted_at_their_expanded_size() {
        // Billion laughs: ten levels of ten aliases each, under 1 KiB of text.
        let mut yaml = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = check_aliases("laughs.yml", &yaml, 1 << 20).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err}");
        assert!(err.line.is_some_and(|l| l > 1), "{err}");
        // A few aliases of small values pass.
        check_aliases("ok.yml", "a: &x [1, 2]\nb: *x\nc: *x\n", 1 << 20).unwrap();
    }
}
