//! kubectl's `-o jsonpath=TEMPLATE`: text with `{EXPRESSION}` blocks, `{range EXPRESSION}...{end}`
//! loops and `{"literal"}` strings. The expressions themselves are RFC 9535 JSONPath, evaluated by
//! `serde_json_path`; this module only adapts kubectl's template syntax to it (a leading `.` or
//! `[` is rooted at `$`, and inside a range at the current item).

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone)]
enum Part {
    /// Text printed as it is.
    Text(String),
    /// `{EXPRESSION}`: every match printed, separated by spaces.
    Path(JsonPath),
    /// `{range EXPRESSION}BODY{end}`: BODY printed for each match, with it as the root.
    Range(JsonPath, Vec<Part>),
}

/// What the parser found wrong, as kubectl would say it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed action: {0:?} has a '{{' without '}}'")]
    Unclosed(String),
    /// An `{end}` with no `{range}` open.
    #[error("{{end}} without a {{range}}")]
    StrayEnd,
    /// A `{range}` never closed by `{end}`.
    #[error("{{range {0}}} has no {{end}}")]
    MissingEnd(String),
    /// A quoted literal that does not parse.
    #[error("bad string literal {0}")]
    Literal(String),
    /// An expression JSONPath does not accept.
    #[error("bad JSONPath expression {expression:?}: {reason}")]
    Expression {
        /// The expression as written.
        expression: String,
        /// The parser's reason.
        reason: String,
    },
}

impl Template {
    /// Parses kubectl's template syntax.
    pub(crate) fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut stack: Vec<(JsonPath, String, Vec<Part>)> = Vec::new();
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                parts.push(Part::Text(rest.to_owned()));
                break;
            };
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = closing_brace(&rest[open..])
                .ok_or_else(|| TemplateError::Unclosed(text.to_owned()))?;
            let action = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if action == "end" {
                let (path, _, outer) = stack.pop().ok_or(TemplateError::StrayEnd)?;
                let body = std::mem::replace(&mut parts, outer);
                parts.push(Part::Range(path, body));
            } else if let Some(expression) = action.strip_prefix("range ") {
                let expression = expression.trim();
                let path = compile(expression)?;
                stack.push((path, expression.to_owned(), std::mem::take(&mut parts)));
            } else if action.starts_with('"') {
                let literal: String = serde_json::from_str(action)
                    .map_err(|_| TemplateError::Literal(action.to_owned()))?;
                parts.push(Part::Text(literal));
            } else {
                parts.push(Part::Path(compile(action)?));
            }
        }
        if let Some((_, expression, _)) = stack.pop() {
            return Err(TemplateError::MissingEnd(expression));
        }
        Ok(Template { parts })
    }

    /// Renders the template against `root`. Like kubectl, a path that matches nothing prints
    /// nothing, and nothing is added at the end (no newline).
    pub(crate) fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render_parts(&self.parts, root, &mut out);
        out
    }
}

/// The offset of the `}` closing the `{` at the start of `text`, skipping braces inside quotes.
fn closing_brace(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in text.char_indices().skip(1) {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Some(index),
            None => {}
        }
    }
    None
}

/// Compiles a kubectl expression (`.a.b`, `.items[*].x`, `@`, `$.a`) as RFC 9535 JSONPath.
fn compile(expression: &str) -> Result<JsonPath, TemplateError> {
    let rooted = if matches!(expression, "@" | "$" | ".") {
        "$".to_owned()
    } else if let Some(relative) = expression.strip_prefix('@') {
        format!("${relative}")
    } else if expression.starts_with('$') {
        expression.to_owned()
    } else if expression.starts_with('.') || expression.starts_with('[') {
        format!("${expression}")
    } else {
        format!("$.{expression}")
    };
    JsonPath::parse(&rooted).map_err(|e| TemplateError::Expression {
        expression: expression.to_owned(),
        reason: e.to_string(),
    })
}

/// Appends `parts` rendered against `root` to `out`.
fn render_parts(parts: &[Part], root: &Value, out: &mut String) {
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Path(path) => {
                let rendered: Vec<String> =
                    path.query(root).all().into_iter().map(scalar).collect();
                out.push_str(&rendered.join(" "));
            }
            Part::Range(path, body) => {
                for item in path.query(root).all() {
                    render_parts(body, item, out);
                }
            }
        }
    }
}

/// A matched value as kubectl prints it: strings bare, everything else as compact JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Value {
        serde_json::json!({
            "tokens": [
                {"tokenId": "ns.a", "state": "TOKEN_STATE_ACTIVE", "labels": {"team": "blue"}},
                {"tokenId": "ns.b", "state": "TOKEN_STATE_EXPIRED", "audiences": ["x", "y"]}
            ]
        })
    }

    fn render(template: &str) -> String {
        Template::parse(template)
            .unwrap_or_else(|e| panic!("{template}: {e}"))
            .render(&list())
    }

    #[test]
    fn fields_and_wildcards_like_kubectl() {
        assert_eq!(render("{.tokens[0].tokenId}"), "ns.a");
        assert_eq!(render("{.tokens[*].tokenId}"), "ns.a ns.b");
        assert_eq!(render("id={.tokens[1].tokenId}!"), "id=ns.b!");
        assert_eq!(render("{.tokens[1].audiences}"), r#"["x","y"]"#);
        assert_eq!(render("{.tokens[0].labels.team}"), "blue");
        assert_eq!(render("{.tokens[0].nothing}"), "");
        assert_eq!(
            Template::parse("{.}").map(|t| t.render(&serde_json::json!({"a": 1}))),
            Ok(r#"{"a":1}"#.to_owned())
        );
        assert_eq!(
            render(r#"{.tokens[?(@.state=="TOKEN_STATE_EXPIRED")].tokenId}"#),
            "ns.b"
        );
    }

    #[test]
    fn ranges_and_literals() {
        assert_eq!(
            render(r#"{range .tokens[*]}{.tokenId}{"\t"}{@.state}{"\n"}{end}"#),
            "ns.a\tTOKEN_STATE_ACTIVE\nns.b\tTOKEN_STATE_EXPIRED\n"
        );
        assert_eq!(
            render(r#"{range .tokens[*]}[{range .audiences[*]}{@};{end}]{end}"#),
            "[][x;y;]"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(matches!(
            Template::parse("{.a"),
            Err(TemplateError::Unclosed(_))
        ));
        assert_eq!(
            Template::parse("{end}").err(),
            Some(TemplateError::StrayEnd)
        );
        assert!(matches!(
            Template::parse("{range .a[*]}{.b}"),
            Err(TemplateError::MissingEnd(_))
        ));
        assert!(matches!(
            Template::parse("{.a[}"),
            Err(TemplateError::Expression { .. })
        ));
    }
}
