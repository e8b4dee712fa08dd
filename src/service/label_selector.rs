//! Callers' label selectors (Kubernetes syntax), checked before any API call so a bad one is
//! INVALID_ARGUMENT naming the rule, never an API server's 400; kube-rs' `Selector` renders it.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

use crate::names;

/// Longest selector accepted; a page's API call must stay small whatever the caller sends.
pub const MAX_SELECTOR_LEN: usize = 4096;

/// Parses `text` (`a=b,c!=d,e in (x,y),f notin (z),g,!h`); `reserved` says which keys are not
/// the caller's to select on. The answer is the normalised selector, or what is wrong with it.
pub fn parse(text: &str, reserved: impl Fn(&str) -> bool) -> Result<Selector, String> {
    if text.len() > MAX_SELECTOR_LEN {
        return Err(format!("must be at most {MAX_SELECTOR_LEN} characters"));
    }
    let mut expressions = Vec::new();
    for requirement in split_requirements(text)? {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            if text.trim().is_empty() {
                break;
            }
            return Err("has an empty requirement (a stray comma)".into());
        }
        let expression = parse_requirement(requirement)?;
        let key = match &expression {
            Expression::In(k, _)
            | Expression::NotIn(k, _)
            | Expression::Equal(k, _)
            | Expression::NotEqual(k, _)
            | Expression::Exists(k)
            | Expression::DoesNotExist(k) => k,
        };
        names::check_label_key(key).map_err(|rule| format!("key {key:?} {rule}"))?;
        if reserved(key) {
            return Err(format!(
                "key {key:?} is tokend's own; select on the labels given at issue"
            ));
        }
        expressions.push(expression);
    }
    Ok(Selector::from_iter(expressions))
}

/// Splits on the commas that separate requirements, not those inside `in (...)` sets.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("has nested parentheses".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("has a ')' without '('".into()),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("has a '(' without ')'".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(requirement: &str) -> Result<Expression, String> {
    if let Some(key) = requirement.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(bare_key(key)?));
    }
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = requirement.split_once(op) {
            let key = bare_key(key)?;
            let value = value.trim();
            names::check_label_value(value)
                .map_err(|rule| format!("value {value:?} of {key:?} {rule}"))?;
            return Ok(if op == "!=" {
                Expression::NotEqual(key, value.into())
            } else {
                Expression::Equal(key, value.into())
            });
        }
    }
    if let Some(open) = requirement.find('(') {
        let head = requirement[..open].trim();
        let set_text = requirement[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{requirement:?}: nothing may follow the ')'"))?;
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("{requirement:?}: expected KEY in (...) or KEY notin (...)"))?;
        let key = bare_key(key)?;
        let mut values = BTreeSet::new();
        for value in set_text.split(',').map(str::trim) {
            names::check_label_value(value)
                .map_err(|rule| format!("value {value:?} of {key:?} {rule}"))?;
            values.insert(value.to_owned());
        }
        return match op {
            "in" => Ok(Expression::In(key, values)),
            "notin" => Ok(Expression::NotIn(key, values)),
            other => Err(format!(
                "{requirement:?}: unknown operator {other:?} (expected in or notin)"
            )),
        };
    }
    Ok(Expression::Exists(bare_key(requirement)?))
}

fn bare_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("has a requirement without a key".into());
    }
    if key.contains(char::is_whitespace) {
        return Err(format!(
            "{key:?}: expected KEY, KEY=VALUE, KEY!=VALUE, KEY in (...), KEY notin (...) or !KEY"
        ));
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        parse(text, |k| k.starts_with("tokend.io/"))
            .expect("valid")
            .to_string()
    }

    #[test]
    fn every_operator_round_trips() {
        assert_eq!(ok("team=blue"), "team=blue");
        assert_eq!(ok(" team == blue , tier!=x"), "team=blue,tier!=x");
        assert_eq!(ok("env in (a, b),x notin (c)"), "env in (a,b),x notin (c)");
        assert_eq!(ok("team,!gone"), "team,!gone");
        assert_eq!(ok(""), "");
        assert_eq!(ok("example.com/team=a"), "example.com/team=a");
    }

    #[test]
    fn bad_syntax_and_reserved_keys_are_refused() {
        for bad in [
            "=x",
            "a b",
            "a=b,",
            "env in (a",
            "env within (a)",
            "Bad Key=x",
            "a=b c",
            "tokend.io/service-account=x",
            "a=(b)",
        ] {
            assert!(
                parse(bad, |k| k.starts_with("tokend.io/")).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
