//! The token id: opaque to callers, but it names the record Secret's namespace and name so a
//! lookup is one GET, never a cluster-wide scan.

use std::fmt;

use rand::Rng;

use crate::names;
use crate::vocabulary::RECORD_SECRET_PREFIX;

/// Length of the random part of an id: 16 characters of 36 give about 82 bits.
const RANDOM_LEN: usize = 16;

/// Identifies one token record: `NAMESPACE.RANDOM`, the Secret being `tokend-RANDOM` there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenId {
    namespace: String,
    random: String,
}

impl TokenId {
    /// A fresh id for a token in `namespace`.
    pub fn generate(namespace: &str) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let random = (0..RANDOM_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Self {
            namespace: namespace.to_owned(),
            random,
        }
    }

    /// Parses an id a caller sent back; the error says what shape was expected.
    pub fn parse(value: &str) -> Result<Self, String> {
        let shape = "must be NAMESPACE.ID as returned by IssueToken";
        let (namespace, random) = value.split_once('.').ok_or_else(|| shape.to_owned())?;
        names::check_dns1123_label(namespace).map_err(|_| shape.to_owned())?;
        let random_ok = random.len() == RANDOM_LEN
            && random
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !random_ok {
            return Err(shape.to_owned());
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            random: random.to_owned(),
        })
    }

    /// The id of the record held in Secret `secret_name` of `namespace`, if it is tokend's shape.
    pub fn from_secret(namespace: &str, secret_name: &str) -> Option<Self> {
        let random = secret_name.strip_prefix(RECORD_SECRET_PREFIX)?;
        Self::parse(&format!("{namespace}.{random}")).ok()
    }

    /// Namespace of the record (and of the ServiceAccount).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Name of the Secret holding the record.
    pub fn secret_name(&self) -> String {
        format!("{RECORD_SECRET_PREFIX}{}", self.random)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_its_text_and_its_secret() {
        let id = TokenId::generate("team-a");
        let parsed = TokenId::parse(&id.to_string()).expect("own ids parse");
        assert_eq!(parsed, id);
        assert_eq!(parsed.namespace(), "team-a");
        assert_eq!(TokenId::from_secret("team-a", &id.secret_name()), Some(id));
    }

    #[test]
    fn ids_of_another_shape_are_refused() {
        for bad in [
            "",
            "team-a",
            "team-a.",
            ".abc",
            "Team.aaaaaaaaaaaaaaaa",
            "a.b/../c",
            "a.AAAAAAAAAAAAAAAA",
        ] {
            assert!(TokenId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TokenId::from_secret("ns", "other-secret"), None);
    }
}
