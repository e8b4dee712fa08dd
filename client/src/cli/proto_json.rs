//! tokend's messages as proto3 JSON, the shape grpcurl and every other language's protobuf
//! library print: lowerCamelCase names, enums by name, Timestamps in RFC 3339, 64-bit integers as
//! strings, fields at their default value left out.
//!
//! The mapping is not written here: each message is re-read as a `prost_reflect::DynamicMessage`
//! against the API's own descriptor set (`tokend_api::v1::FILE_DESCRIPTOR_SET`), so a field added
//! to the proto shows up in `-o json` without a change to tokenctl.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_yaml::Value;

use crate::v1;

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtoJsonError {
    /// The compiled-in descriptor set does not decode (a build problem).
    #[error("tokend's API descriptor set is unusable: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// The descriptor set has no message of that name (a build problem).
    #[error("tokend's API descriptor set has no message {0}")]
    NoMessage(String),
    /// The message's bytes do not decode against its descriptor.
    #[error("re-reading {name}: {source}")]
    Decode {
        /// The message's full name.
        name: String,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The message has a value proto3 JSON cannot express (e.g. a Timestamp out of range).
    #[error("rendering {name} as JSON: {source}")]
    Serialize {
        /// The message's full name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
}

/// The API's descriptors, decoded once.
fn pool() -> Result<&'static DescriptorPool, ProtoJsonError> {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = DescriptorPool::decode(v1::FILE_DESCRIPTOR_SET)?;
    Ok(POOL.get_or_init(|| pool))
}

/// A message of the API: its full proto name, for the descriptor lookup.
pub(crate) trait ApiMessage: Message {
    /// `tokend.v1.Name`.
    const FULL_NAME: &'static str;
}

macro_rules! api_messages {
    ($($name:ident),* $(,)?) => {
        $(impl ApiMessage for v1::$name {
            const FULL_NAME: &'static str = concat!("tokend.v1.", stringify!($name));
        })*
    };
}

api_messages!(
    IssueTokenResponse,
    RevokeTokenResponse,
    ValidateTokenResponse,
    ListTokensResponse,
    GetTokenResponse,
    TokenRecord,
);

/// `message` as a proto3 JSON document, its fields in proto order and map entries sorted by key
/// (so output is stable; the protobuf JSON mapping leaves map order open).
pub(crate) fn to_document<M: ApiMessage>(message: &M) -> Result<Value, ProtoJsonError> {
    let descriptor = pool()?
        .get_message_by_name(M::FULL_NAME)
        .ok_or_else(|| ProtoJsonError::NoMessage(M::FULL_NAME.to_owned()))?;
    let dynamic = DynamicMessage::decode(descriptor.clone(), message.encode_to_vec().as_slice())
        .map_err(|source| ProtoJsonError::Decode {
            name: M::FULL_NAME.to_owned(),
            source,
        })?;
    // The defaults are grpcurl's: JSON names, enum names, defaults omitted, 64-bit as strings.
    let options = SerializeOptions::new();
    let mut document = dynamic
        .serialize_with_options(serde_yaml::value::Serializer, &options)
        .map_err(|source| ProtoJsonError::Serialize {
            name: M::FULL_NAME.to_owned(),
            source,
        })?;
    sort_maps(&mut document, &descriptor);
    Ok(document)
}

/// Sorts the entries of every map field in `value` (a rendered `descriptor` message) by key.
fn sort_maps(value: &mut Value, descriptor: &MessageDescriptor) {
    let Value::Mapping(object) = value else {
        return;
    };
    for field in descriptor.fields() {
        let Some(field_value) = object.get_mut(field.json_name()) else {
            continue;
        };
        if field.is_map() {
            let Value::Mapping(entries) = field_value else {
                continue;
            };
            let mut sorted: Vec<(Value, Value)> = std::mem::take(entries).into_iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
            if let Kind::Message(entry) = field.kind() {
                let value_field = entry.map_entry_value_field();
                if let Kind::Message(inner) = value_field.kind() {
                    for (_, v) in &mut sorted {
                        sort_maps(v, &inner);
                    }
                }
            }
            entries.extend(sorted);
        } else if let Kind::Message(inner) = field.kind() {
            match field_value {
                Value::Sequence(items) => items.iter_mut().for_each(|item| sort_maps(item, &inner)),
                other => sort_maps(other, &inner),
            }
        }
    }
}

/// The document as pretty JSON with a trailing newline.
pub(crate) fn to_json_text(document: &Value) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(document)? + "\n")
}

/// The document as a `serde_json::Value`, for JSONPath.
pub(crate) fn to_json_value(document: &Value) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> v1::TokenRecord {
        v1::TokenRecord {
            token_id: "team-a.abc".into(),
            namespace: "team-a".into(),
            service_account: "ci".into(),
            state: v1::TokenState::Active.into(),
            expiration_time: Some(prost_types::Timestamp {
                seconds: 1_764_067_251,
                nanos: 120_000_000,
            }),
            labels: [("b", "2"), ("a", "1"), ("c", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            binding_scope: v1::BindingScope::Unspecified.into(),
            ..Default::default()
        }
    }

    #[test]
    fn follows_the_proto3_json_mapping() -> Result<(), Box<dyn std::error::Error>> {
        let json = to_json_value(&to_document(&v1::GetTokenResponse {
            token: Some(record()),
        })?)?;
        let token = &json["token"];
        assert_eq!(token["tokenId"], "team-a.abc");
        assert_eq!(token["serviceAccount"], "ci");
        assert_eq!(token["state"], "TOKEN_STATE_ACTIVE");
        assert_eq!(token["expirationTime"], "2025-11-25T10:40:51.120Z");
        // Defaults are left out, as grpcurl leaves them out.
        assert!(token.get("bindingScope").is_none(), "{token}");
        assert!(token.get("issuedBy").is_none(), "{token}");
        assert!(token.get("audiences").is_none(), "{token}");
        assert!(token.get("token_id").is_none(), "{token}");
        Ok(())
    }

    #[test]
    fn fields_keep_proto_order_and_map_keys_are_sorted() -> Result<(), Box<dyn std::error::Error>> {
        let text = to_json_text(&to_document(&record())?)?;
        let position = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
        assert!(
            position("\"tokenId\"") < position("\"namespace\""),
            "{text}"
        );
        assert!(position("\"namespace\"") < position("\"labels\""), "{text}");
        assert!(position("\"a\"") < position("\"b\""), "{text}");
        assert!(position("\"b\"") < position("\"c\""), "{text}");
        Ok(())
    }
}
