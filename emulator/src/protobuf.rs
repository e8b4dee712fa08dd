//! Decoding Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON.
//!
//! kubectl sends built-in objects as protobuf; the emulator stores JSON, so the bodies of the types it
//! serves are translated field by field (numbers from the upstream `generated.proto` files).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The 4-byte prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\x00";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    Time,
    MicroTime,
    Msg(&'static [Field]),
    MapStr,
    MapBytes,
    MapStrList,
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn rep(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const STRING_LIST: &[Field] = &[rep(1, "items", Ty::Str)];
const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];
const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    rep(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    rep(14, "finalizers", Ty::Str),
];
const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "fieldPath", Ty::Str),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Ty::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    rep(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    rep(3, "imagePullSecrets", Ty::Msg(LOCAL_OBJECT_REFERENCE)),
    f(4, "automountServiceAccountToken", Ty::Bool),
];
const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];
const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];
const NAMESPACE_SPEC: &[Field] = &[rep(1, "finalizers", Ty::Str)];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(NAMESPACE_SPEC)),
];
const BOUND_OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "apiVersion", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
];
const TOKEN_REQUEST_SPEC: &[Field] = &[
    rep(1, "audiences", Ty::Str),
    f(3, "boundObjectRef", Ty::Msg(BOUND_OBJECT_REFERENCE)),
    f(4, "expirationSeconds", Ty::Int),
];
const TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(TOKEN_REQUEST_SPEC)),
];
const TOKEN_REVIEW_SPEC: &[Field] = &[f(1, "token", Ty::Str), rep(2, "audiences", Ty::Str)];
const TOKEN_REVIEW: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(TOKEN_REVIEW_SPEC)),
];
const RESOURCE_ATTRIBUTES: &[Field] = &[
    f(1, "namespace", Ty::Str),
    f(2, "verb", Ty::Str),
    f(3, "group", Ty::Str),
    f(4, "version", Ty::Str),
    f(5, "resource", Ty::Str),
    f(6, "subresource", Ty::Str),
    f(7, "name", Ty::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[Field] = &[f(1, "path", Ty::Str), f(2, "verb", Ty::Str)];
const SELF_SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    f(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    f(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const SUBJECT_ACCESS_REVIEW_SPEC: &[Field] = &[
    f(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    f(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
    f(3, "user", Ty::Str),
    rep(4, "groups", Ty::Str),
    f(5, "extra", Ty::MapStrList),
    f(6, "uid", Ty::Str),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
];
const SUBJECT_ACCESS_REVIEW: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(SUBJECT_ACCESS_REVIEW_SPEC)),
];
const POLICY_RULE: &[Field] = &[
    rep(1, "verbs", Ty::Str),
    rep(2, "apiGroups", Ty::Str),
    rep(3, "resources", Ty::Str),
    rep(4, "resourceNames", Ty::Str),
    rep(5, "nonResourceURLs", Ty::Str),
];
const ROLE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    rep(2, "rules", Ty::Msg(POLICY_RULE)),
];
const SUBJECT: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "apiGroup", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "namespace", Ty::Str),
];
const ROLE_REF: &[Field] = &[
    f(1, "apiGroup", Ty::Str),
    f(2, "kind", Ty::Str),
    f(3, "name", Ty::Str),
];
const ROLE_BINDING: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    rep(2, "subjects", Ty::Msg(SUBJECT)),
    f(3, "roleRef", Ty::Msg(ROLE_REF)),
];
const LEASE_SPEC: &[Field] = &[
    f(1, "holderIdentity", Ty::Str),
    f(2, "leaseDurationSeconds", Ty::Int),
    f(3, "acquireTime", Ty::MicroTime),
    f(4, "renewTime", Ty::MicroTime),
    f(5, "leaseTransitions", Ty::Int),
];
const LEASE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(LEASE_SPEC)),
];
const DELETE_OPTIONS_PRECONDITIONS: &[Field] =
    &[f(1, "uid", Ty::Str), f(2, "resourceVersion", Ty::Str)];
const DELETE_OPTIONS: &[Field] = &[
    f(1, "gracePeriodSeconds", Ty::Int),
    f(2, "preconditions", Ty::Msg(DELETE_OPTIONS_PRECONDITIONS)),
    f(4, "propagationPolicy", Ty::Str),
];

fn schema_for(kind: &str) -> Option<&'static [Field]> {
    Some(match kind {
        "ServiceAccount" => SERVICE_ACCOUNT,
        "Secret" => SECRET,
        "ConfigMap" => CONFIG_MAP,
        "Namespace" => NAMESPACE,
        "TokenRequest" => TOKEN_REQUEST,
        "TokenReview" => TOKEN_REVIEW,
        "SelfSubjectAccessReview" => SELF_SUBJECT_ACCESS_REVIEW,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => SUBJECT_ACCESS_REVIEW,
        "Role" | "ClusterRole" => ROLE,
        "RoleBinding" | "ClusterRoleBinding" => ROLE_BINDING,
        "Lease" => LEASE,
        "DeleteOptions" => DELETE_OPTIONS,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let slice = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(slice)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        self.take(n)
    }

    /// Reads the next key; returns (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), String> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".to_string())
}

/// Decodes a `{key=1, value=2}` map entry.
fn map_entry(b: &[u8]) -> Result<(String, Vec<u8>), String> {
    let mut r = Reader::new(b);
    let (mut key, mut value) = (String::new(), Vec::new());
    while !r.done() {
        let (num, wire) = r.key()?;
        match (num, wire) {
            (1, 2) => key = utf8(r.bytes()?)?,
            (2, 2) => value = r.bytes()?.to_vec(),
            (_, w) => r.skip(w)?,
        }
    }
    Ok((key, value))
}

fn time_value(b: &[u8], micro: bool) -> Result<Value, String> {
    let mut r = Reader::new(b);
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while !r.done() {
        match r.key()? {
            (1, 0) => seconds = r.varint()? as i64,
            (2, 0) => nanos = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    let base = crate::clock::rfc3339(seconds);
    if micro {
        let trimmed = base.trim_end_matches('Z');
        return Ok(Value::String(format!("{trimmed}.{:06}Z", nanos / 1000)));
    }
    Ok(Value::String(base))
}

fn decode_message(b: &[u8], schema: &'static [Field]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while !r.done() {
        let (num, wire) = r.key()?;
        let Some(field) = schema.iter().find(|f| f.num == num) else {
            r.skip(wire)?;
            continue;
        };
        let value = match (field.ty, wire) {
            (Ty::Str, 2) => Value::String(utf8(r.bytes()?)?),
            (Ty::Int, 0) => Value::from(r.varint()? as i64),
            (Ty::Bool, 0) => Value::Bool(r.varint()? != 0),
            (Ty::Time, 2) => time_value(r.bytes()?, false)?,
            (Ty::MicroTime, 2) => time_value(r.bytes()?, true)?,
            (Ty::Msg(inner), 2) => Value::Object(decode_message(r.bytes()?, inner)?),
            (Ty::MapStr | Ty::MapBytes | Ty::MapStrList, 2) => {
                let (k, v) = map_entry(r.bytes()?)?;
                let v = match field.ty {
                    Ty::MapStr => Value::String(utf8(&v)?),
                    Ty::MapBytes => Value::String(STANDARD.encode(&v)),
                    _ => {
                        let items = decode_message(&v, STRING_LIST)?;
                        items
                            .get("items")
                            .cloned()
                            .unwrap_or(Value::Array(Vec::new()))
                    }
                };
                let entry = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            (_, w) => {
                r.skip(w)?;
                continue;
            }
        };
        if field.repeated {
            let entry = out
                .entry(field.name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(a) = entry.as_array_mut() {
                a.push(value);
            }
        } else {
            out.insert(field.name.into(), value);
        }
    }
    Ok(out)
}

/// Whether a Content-Type names the Kubernetes protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim() == "application/vnd.kubernetes.protobuf")
}

/// Translates a protobuf-encoded object of a served kind into its JSON form.
pub fn to_json(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let mut r = Reader::new(envelope);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.done() {
                    match tm.key()? {
                        (1, 2) => api_version = utf8(tm.bytes()?)?,
                        (2, 2) => kind = utf8(tm.bytes()?)?,
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let schema =
        schema_for(&kind).ok_or_else(|| format!("no protobuf decoding for kind {kind:?}"))?;
    let mut obj = decode_message(raw, schema)?;
    obj.insert("kind".into(), Value::String(kind));
    obj.insert("apiVersion".into(), Value::String(api_version));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(num: u64, wire: u64) -> Vec<u8> {
        varint(num << 3 | wire)
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(num: u64, data: &[u8]) -> Vec<u8> {
        let mut out = key(num, 2);
        out.extend(varint(data.len() as u64));
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn decodes_a_token_request() -> Result<(), String> {
        let meta = bytes_field(1, b"demo");
        let mut bound = bytes_field(1, b"Secret");
        bound.extend(bytes_field(2, b"v1"));
        bound.extend(bytes_field(3, b"rec"));
        let mut spec = bytes_field(1, b"aud");
        spec.extend(bytes_field(3, &bound));
        spec.extend(key(4, 0));
        spec.extend(varint(3600));
        let mut raw = bytes_field(1, &meta);
        raw.extend(bytes_field(2, &spec));
        let mut type_meta = bytes_field(1, b"authentication.k8s.io/v1");
        type_meta.extend(bytes_field(2, b"TokenRequest"));
        let mut body = MAGIC.to_vec();
        body.extend(bytes_field(1, &type_meta));
        body.extend(bytes_field(2, &raw));
        body.extend(bytes_field(4, b""));
        assert_eq!(
            to_json(&body)?,
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                   "metadata": {"name": "demo"},
                   "spec": {"audiences": ["aud"], "expirationSeconds": 3600,
                            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "rec"}}})
        );
        Ok(())
    }

    #[test]
    fn decodes_maps() -> Result<(), String> {
        let mut entry = bytes_field(1, b"a");
        entry.extend(bytes_field(2, b"b"));
        let meta = bytes_field(11, &entry);
        let mut data_entry = bytes_field(1, b"k");
        data_entry.extend(bytes_field(2, &[1, 2]));
        let mut raw = bytes_field(1, &meta);
        raw.extend(bytes_field(2, &data_entry));
        let mut type_meta = bytes_field(1, b"v1");
        type_meta.extend(bytes_field(2, b"Secret"));
        let mut body = MAGIC.to_vec();
        body.extend(bytes_field(1, &type_meta));
        body.extend(bytes_field(2, &raw));
        assert_eq!(
            to_json(&body)?,
            json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"labels": {"a": "b"}}, "data": {"k": "AQI="}})
        );
        Ok(())
    }

    #[test]
    fn rejects_bodies_without_the_prefix() {
        assert!(to_json(b"{}").is_err());
        assert!(to_json(b"k8s\x00\x0a\xff").is_err());
    }
}
