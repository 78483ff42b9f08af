//! The one canonical JSON writer of the crate: object keys sorted by their UTF-8 bytes at
//! every depth, whatever a struct's field order, a `HashMap`'s iteration order (oci-spec
//! keeps annotations in one) or serde_json's `preserve_order` feature would say.
//!
//! Two renderings: [`to_vec`] on one line (OCI documents in the store and on registries,
//! DSSE payloads, JSON Lines) and [`to_vec_pretty`] with two-space indentation and a final
//! newline (the attestation files beside an image). `attest::json` restricts them to the
//! attestation types, which makes them infallible there.

use serde::Serialize;
use serde_json::Value;

/// `v` as a JSON value with every object's keys sorted.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, serde_json::Error> {
    serde_json::to_value(v).map(sorted)
}

/// Canonical JSON on one line.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    Ok(to_value(v)?.to_string().into_bytes())
}

/// Canonical JSON with two-space indentation and a final newline.
pub fn to_vec_pretty<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    // `{:#}` of a `Value` is serde_json's pretty printer (two-space indentation).
    Ok(format!("{:#}\n", to_value(v)?).into_bytes())
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let mut m = std::collections::HashMap::new();
        for k in ["z", "a", "m", "b", "y"] {
            m.insert(k, serde_json::json!({"q": 1, "c": [{"y": 2, "x": 1}]}));
        }
        let line = String::from_utf8(to_vec(&m).unwrap()).unwrap();
        assert!(line.starts_with(r#"{"a":{"c":[{"x":1,"y":2}],"q":1},"b":"#), "{line}");
        let pretty = to_vec_pretty(&m).unwrap();
        assert!(pretty.ends_with(b"}\n"));
        assert_eq!(serde_json::from_slice::<Value>(&pretty).unwrap(), to_value(&m).unwrap());
    }
}
