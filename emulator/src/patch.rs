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
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch to `doc`; the error is the message for a 422 answer. Nothing
/// is changed when an operation fails.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    // The API server's JSON patch library (evanphx/json-patch) passes a `test` of null against a
    // missing path; kube-runtime's finalizer helper relies on it (`test /metadata/finalizers
    // null`, then `add`). The json-patch crate fails it, so such tests are dropped first.
    let mut ops = ops.clone();
    if let Some(list) = ops.as_array_mut() {
        list.retain(|op| {
            !(op["op"] == "test"
                && op["value"].is_null()
                && op["path"]
                    .as_str()
                    .is_some_and(|p| doc.pointer(p).is_none()))
        });
    }
    let ops: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| format!("a JSON patch must be an array of operations: {e}"))?;
    json_patch::patch(doc, &ops).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_test_of_null_passes_on_a_missing_path_as_on_the_api_server() {
        let mut doc = json!({"metadata": {"name": "x"}});
        let ops = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
        ]);
        assert_eq!(json_patch(&mut doc, &ops), Ok(()));
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        // A test of null on a path that has a value still fails.
        let again = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]);
        assert!(json_patch(&mut doc, &again).is_err());
    }

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
