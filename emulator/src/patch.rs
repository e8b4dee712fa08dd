//! PATCH bodies: JSON merge patch (RFC 7386, also used for strategic merge) and JSON patch (RFC 6902).

use serde_json::Value;

/// The patch formats the emulator accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` and `application/strategic-merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml` (server-side apply, approximated as a merge that may create).
    Apply,
}

impl PatchKind {
    /// The patch kind for a Content-Type, None when unsupported.
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Some(PatchKind::Merge)
            }
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(Vec<String>, String), String> {
    if path.is_empty() {
        return Err("the root of the document cannot be patched".into());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop().unwrap_or_default();
    Ok((tokens, last))
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {t}"))?;
    }
    Ok(cur)
}

fn get(doc: &Value, path: &str) -> Result<Value, String> {
    doc.pointer(path)
        .cloned()
        .ok_or_else(|| format!("doc is missing path: {path:?}"))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parents, last) = split_pointer(path)?;
    match parent_mut(doc, &parents)? {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .map_err(|_| format!("invalid array index {last:?}"))?
            };
            if idx > a.len() {
                return Err(format!("array index {idx} out of bounds"));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(format!("cannot add at {path:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parents, last) = split_pointer(path)?;
    match parent_mut(doc, &parents)? {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("doc is missing path: {path:?}")),
        Value::Array(a) => {
            let idx = last
                .parse::<usize>()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if idx >= a.len() {
                return Err(format!("array index {idx} out of bounds"));
            }
            Ok(a.remove(idx))
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

/// Applies an RFC 6902 JSON patch to `doc`; the error is the message for a 422 answer.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let field = |k: &str| op.get(k).and_then(Value::as_str);
        let path = field("path").ok_or("operation is missing \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or("operation is missing \"value\"")
        };
        match field("op").unwrap_or("") {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "test" => {
                if get(doc, path)? != value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "move" => {
                let from = field("from").ok_or("operation is missing \"from\"")?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = field("from").ok_or("operation is missing \"from\"")?;
                let v = get(doc, from)?;
                add(doc, path, v)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_sets_and_removes() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "y"}});
        merge_patch(
            &mut doc,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": null}),
        );
        assert_eq!(doc, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "test", "path": "/metadata/labels/b", "value": "2"},
        ]);
        assert_eq!(json_patch(&mut doc, &ops), Ok(()));
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"a": "x", "b": "2"}}, "list": [2, 3]})
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/list/0", "value": 9}])
            )
            .is_err()
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }
}
