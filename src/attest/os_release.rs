//! os-release(5) parsing: the distribution id and version that purls and SBOMs name.
//!
//! The file is a list of `KEY=value` lines with shell-like quoting: a value may be wrapped in
//! double or single quotes, and a backslash escapes `$`, `"`, `\`, `` ` `` (and, outside
//! single quotes, any character). Blank lines and `#` comments are ignored, as are lines this
//! parser does not understand: the file comes from a component image and is untrusted.

/// What an SBOM needs from os-release.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsRelease {
    /// `ID`, lowercase; `linux` when absent, as os-release(5) specifies.
    pub id: String,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    pub version_codename: Option<String>,
}

/// Parses os-release bytes (invalid UTF-8 is replaced, never an error).
pub fn parse(bytes: &[u8]) -> OsRelease {
    let text = String::from_utf8_lossy(bytes);
    let mut out = OsRelease { id: "linux".to_string(), ..OsRelease::default() };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else { continue };
        let Some(value) = unquote(raw) else { continue };
        let value = Some(value).filter(|v| !v.is_empty());
        match key.trim() {
            "ID" => {
                if let Some(v) = value {
                    out.id = v.to_ascii_lowercase();
                }
            }
            "VERSION_ID" => out.version_id = value,
            "PRETTY_NAME" => out.pretty_name = value,
            "VERSION_CODENAME" => out.version_codename = value,
            _ => {}
        }
    }
    out
}

/// Undoes shell quoting of one value; `None` for an unterminated quote.
fn unquote(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        e @ ('$' | '"' | '\\' | '`') => out.push(e),
                        '\n' => {}
                        e => {
                            out.push('\\');
                            out.push(e);
                        }
                    },
                    e => out.push(e),
                }
            },
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    e => out.push(e),
                }
            },
            '\\' => out.push(chars.next()?),
            // An unquoted space ends the value (anything after it would be a command).
            c if c.is_whitespace() => break,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_bookworm() {
        let text = br#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;
        let os = parse(text);
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os.version_codename.as_deref(), Some("bookworm"));
    }

    #[test]
    fn alpine_and_quoting_rules() {
        let text = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n\
PRETTY_NAME='Alpine Linux v3.20'\n# comment\nbogus line\n";
        let os = parse(text);
        assert_eq!(os.id, "alpine");
        assert_eq!(os.version_id.as_deref(), Some("3.20.3"));
        assert_eq!(os.pretty_name.as_deref(), Some("Alpine Linux v3.20"));
        assert_eq!(os.version_codename, None);

        assert_eq!(
            unquote(r#""a \"quoted\" \$word \x""#).as_deref(),
            Some(r#"a "quoted" $word \x"#)
        );
        assert_eq!(unquote(r"'single \ kept'").as_deref(), Some(r"single \ kept"));
        assert_eq!(unquote(r"plain\ escaped").as_deref(), Some("plain escaped"));
        assert_eq!(unquote("\"unterminated"), None);
    }

    #[test]
    fn missing_id_defaults_to_linux_and_garbage_does_not_panic() {
        assert_eq!(parse(b"").id, "linux");
        assert_eq!(parse(b"ID=\"\"\n").id, "linux");
        let os = parse(b"\xff\xfe=\x00\nID=\"Ubuntu\"\nVERSION_ID=\"24.04\n");
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id, None);
    }
}
