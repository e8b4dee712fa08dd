//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`, `>`/`<`) and `metadata.*` field selectors.

use serde_json::Value;

use crate::validation::{is_label_key, is_valid_label_value};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also matches objects without the key).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also matches objects without the key).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key>n`.
    GreaterThan(String, i64),
    /// `key<n`.
    LessThan(String, i64),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn check_key(key: &str) -> Result<String, String> {
    if is_label_key(key) {
        Ok(key.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key \"{key}\""
        ))
    }
}

fn check_value(value: &str) -> Result<String, String> {
    if is_valid_label_value(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value: \"{value}\""
        ))
    }
}

fn parse_set(key: &str, rest: &str, negate: bool) -> Result<Requirement, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '('"))?;
    let values = inner
        .split(',')
        .map(|v| check_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let key = check_key(key)?;
    Ok(if negate {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let term = term.trim();
    if term.is_empty() {
        return Err("found '', expected: identifier".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    if let Some(paren) = term.find('(') {
        let head = &term[..paren];
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "unable to parse requirement: found '{head}', expected: in, notin"
            ));
        };
        return match op {
            "in" => parse_set(key, &term[paren..], false),
            "notin" => parse_set(key, &term[paren..], true),
            other => Err(format!(
                "found '{other}', expected: in, notin, =, ==, !=, gt, lt"
            )),
        };
    }
    for (op, len) in [("!=", 2), ("==", 2), ("=", 1), (">", 1), ("<", 1)] {
        if let Some(pos) = term.find(op) {
            let key = check_key(term[..pos].trim())?;
            let value = term[pos + len..].trim();
            return match op {
                "!=" => Ok(Requirement::NotEquals(key, check_value(value)?)),
                "==" | "=" => Ok(Requirement::Equals(key, check_value(value)?)),
                _ => {
                    let n = value.parse::<i64>().map_err(|_| {
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer".to_string()
                    })?;
                    Ok(if op == ">" {
                        Requirement::GreaterThan(key, n)
                    } else {
                        Requirement::LessThan(key, n)
                    })
                }
            };
        }
    }
    Ok(Requirement::Exists(check_key(term)?))
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter; the error is the message for a 400 answer.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        if s.trim().is_empty() {
            return Ok(LabelSelector::default());
        }
        let requirements = split_terms(s)
            .into_iter()
            .map(parse_term)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// One `field=value` or `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector over the fields a resource supports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `fieldSelector`, accepting only `metadata.name`, `metadata.namespace` and the `extra` fields.
    pub fn parse(s: &str, extra: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" && !extra.contains(&field)
            {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether an object satisfies every term (fields are dotted paths into the object).
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = t
                .field
                .split('.')
                .try_fold(obj, |v, part| v.get(part))
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == t.value) == t.equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn equality_and_inequality() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        assert!(sel("app=web").matches(Some(&l)));
        assert!(sel("app==web,tier=front").matches(Some(&l)));
        assert!(!sel("app=db").matches(Some(&l)));
        assert!(sel("app!=db").matches(Some(&l)));
        assert!(sel("missing!=x").matches(Some(&l)));
        assert!(sel("missing!=x").matches(None));
    }

    #[test]
    fn set_based() {
        let l = labels(json!({"env": "prod"}));
        assert!(sel("env in (prod, staging)").matches(Some(&l)));
        assert!(sel("env in(prod)").matches(Some(&l)));
        assert!(!sel("env notin (prod)").matches(Some(&l)));
        assert!(sel("other notin (prod)").matches(Some(&l)));
        assert!(!sel("other in (prod)").matches(Some(&l)));
        assert!(sel("env in (a,prod),env").matches(Some(&l)));
    }

    #[test]
    fn existence() {
        let l = labels(json!({"tokend.io/token": "x"}));
        assert!(sel("tokend.io/token").matches(Some(&l)));
        assert!(!sel("!tokend.io/token").matches(Some(&l)));
        assert!(sel("!other").matches(Some(&l)));
        assert!(sel("").matches(None));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(json!({"n": "5"}));
        assert!(sel("n>3").matches(Some(&l)));
        assert!(!sel("n<3").matches(Some(&l)));
    }

    #[test]
    fn rejects_malformed_selectors() {
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("bad key=x").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("a,,b").is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "x", "namespace": "ns"}, "type": "Opaque"});
        let f = |s: &str| FieldSelector::parse(s, &["type"]).map(|f| f.matches(&obj));
        assert_eq!(f("metadata.name=x"), Ok(true));
        assert_eq!(f("metadata.name==y"), Ok(false));
        assert_eq!(f("metadata.name!=y,metadata.namespace=ns"), Ok(true));
        assert_eq!(f("type=Opaque"), Ok(true));
        assert!(FieldSelector::parse("spec.x=1", &[]).is_err());
    }
}
