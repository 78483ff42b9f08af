//! Where a container setting comes from: the image's `org.mobyproject.config` label, or
//! the spec entry, which wins field by field (LinuxKit's `assign*` helpers).

/// The label through which an image ships its own LinuxKit container settings.
pub const LABEL: &str = "org.mobyproject.config";

/// The spec entry's value if set, else the label's (LinuxKit's `assign*` helpers).
pub(super) fn pick<'a, T>(label: &'a Option<T>, spec: &'a Option<T>) -> Option<&'a T> {
    spec.as_ref().or(label.as_ref())
}

/// As [`pick`], with an empty string meaning "not set".
pub(super) fn pick_str<'a>(label: &'a Option<String>, spec: &'a Option<String>) -> Option<&'a str> {
    let set = |s: &'a Option<String>| s.as_deref().filter(|s| !s.is_empty());
    set(spec).or(set(label))
}

/// `a` then the items of `b` not already present.
pub(super) fn merge_unique(a: Option<&[String]>, b: Option<&[String]>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in a.unwrap_or_default().iter().chain(b.unwrap_or_default()) {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}
