//! Tracing setup: the only place log output and trace export are configured. Log lines go to
//! stderr, text or JSON, filtered by `RUST_LOG`; every line written is one event: control
//! characters inside it (a newline in a certificate name, an escape sequence) are written
//! escaped, so no logged value can forge a second line or rewrite a terminal (and so no ANSI
//! colour codes are ever written, terminal or not). In the text format every field value that
//! holds a space, `=`, a quote or a control character is written quoted, logfmt style
//! ([`LogfmtFields`]), so no logged value can forge a second field either. Spans also go to OpenTelemetry
//! ([`otel`]): exported over OTLP when the `OTEL_*` variables say so, and giving every RPC's
//! log lines a `trace_id` either way.

pub mod otel;

use std::io;

use opentelemetry::trace::TracerProvider as _;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is still batched and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "flushing the last spans failed");
        }
    }
}

/// Installs the global subscriber: log lines on stderr (`RUST_LOG` filter, default `info`;
/// text or JSON) and tokend's own spans to OpenTelemetry (see [`otel::tracer_provider`]).
/// Call it inside the Tokio runtime.
pub fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours are escape sequences, which the writer would escape.
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(LogfmtFields)
            .with_writer(Escaping(io::stderr))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .map_event_format(WithTraceId)
            .with_writer(Escaping(io::stderr))
            .with_filter(filter)
            .boxed(),
    };
    let export = otel::export_from_env();
    // An exporter that cannot be built (an https:// endpoint, an unknown compression) costs
    // the export, not the trace ids in the logs.
    let (provider, problem) = match otel::tracer_provider(&export) {
        Ok(provider) => (Some(provider), None),
        Err(e) => (otel::tracer_provider(&otel::Export::Off).ok(), Some(e)),
    };
    // Spans are traced whatever RUST_LOG says, so a quiet log does not cut traces: tokend's
    // own info spans (an RPC, each Kubernetes call inside it), not its dependencies'.
    let traced = Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), LevelFilter::INFO)
        .with_target(crate::server::rpc_layer::UNTRACED_TARGET, LevelFilter::OFF)
        .with_default(LevelFilter::OFF);
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tokend"))
            .with_filter(traced)
    });
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(spans)
        .try_init();
    match (&export, problem) {
        (_, Some(problem)) => tracing::warn!(%problem, "traces are not exported"),
        (otel::Export::Unusable(problem), None) => {
            tracing::warn!(%problem, "traces are not exported")
        }
        (otel::Export::Otlp, None) => tracing::info!("exporting traces over OTLP"),
        _ => {}
    }
    Telemetry { provider }
}

/// A JSON event format that puts the trace id of the innermost span recording one (an RPC's)
/// first in the line, as `"trace_id"`, where log pipelines look for it to link a line to its
/// trace; the line is otherwise the wrapped format's.
pub struct WithTraceId<F>(pub F);

impl<S, F> FormatEvent<S, JsonFields> for WithTraceId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    F: FormatEvent<S, JsonFields>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let trace_id = ctx.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let extensions = span.extensions();
                let fields = &extensions.get::<FormattedFields<JsonFields>>()?.fields;
                let fields: serde_json::Value = serde_json::from_str(fields).ok()?;
                fields["trace_id"].as_str().map(str::to_owned)
            })
        });
        match (trace_id, line.strip_prefix('{')) {
            (Some(id), Some(rest)) => {
                let id = serde_json::Value::from(id);
                write!(writer, "{{\"trace_id\":{id},{rest}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// The text format's fields, logfmt style: `key=value`, space-separated, with a value quoted
/// (`"..."`, `\\` and `\"` escaped inside) when it is empty or holds a space, `=`, `"` or a
/// control character. tracing-subscriber's default writes a `%` (Display) value bare, so a
/// caller-chosen `x caller=admin` read as a second `caller` field. The message (the event's
/// text, first and without a key) is quoted only when it holds `=` or `"`, the characters that
/// could make a field of it or swallow the fields after it.
pub struct LogfmtFields;

impl<'writer> FormatFields<'writer> for LogfmtFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = LogfmtVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes the fields of one event or span for [`LogfmtFields`].
struct LogfmtVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl LogfmtVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            if value.contains(['=', '"']) {
                write!(self.writer, "{separator}{}", quoted(value))
            } else {
                write!(self.writer, "{separator}{value}")
            }
        } else {
            // `r#type` and the like are recorded with the raw-identifier prefix.
            let name = field.name().trim_start_matches("r#");
            write!(self.writer, "{separator}{name}={}", logfmt_value(value))
        };
    }
}

impl Visit for LogfmtVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

/// `value` as logfmt writes it: bare when it can be read back bare, else quoted.
fn logfmt_value(value: &str) -> std::borrow::Cow<'_, str> {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == '=' || c == '"' || c.is_whitespace() || c.is_control());
    if bare {
        value.into()
    } else {
        quoted(value).into()
    }
}

/// `value` in double quotes with `\` and `"` escaped (control characters are left to
/// [`Escaping`], which writes them as escapes too).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A [`MakeWriter`] whose writers escape control characters, keeping only the newline that
/// ends each event. tracing-subscriber formats an event into one buffer and writes it at once,
/// so each write is one whole line.
#[derive(Clone, Copy)]
pub struct Escaping<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter(self.0.make_writer())
    }
}

/// See [`Escaping`].
pub struct EscapingWriter<W>(W);

impl<W: io::Write> io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(escape_line(buf).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `line` with every control character but a final newline written as an escape (`\n`, `\r`,
/// `\t`, `\u{1b}`).
fn escape_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text.as_ref(), ""),
    };
    let mut out = String::with_capacity(text.len());
    for c in body.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat) -> String {
        logged_in(format, None)
    }

    /// What one audit-like event writes, inside a span carrying `trace_id` when given.
    fn logged_in(format: LogFormat, trace_id: Option<&str>) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Escaping(move || sink.clone()));
        let forged = "eve\n2026-01-01T00:00:00Z  INFO tokend::service::audit: action=\"revoke\" caller=admin\r\u{1b}[2K";
        let emit = || {
            let span = tracing::info_span!("rpc", trace_id = tracing::field::Empty);
            if let Some(id) = trace_id {
                span.record("trace_id", id);
            }
            let _entered = span.enter();
            tracing::info!(target: "tokend::service::audit", caller = %forged, action = "issue");
        };
        match format {
            LogFormat::Text => {
                tracing::subscriber::with_default(builder.fmt_fields(LogfmtFields).finish(), emit)
            }
            LogFormat::Json => tracing::subscriber::with_default(
                builder.json().map_event_format(WithTraceId).finish(),
                emit,
            ),
        }
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn a_value_with_control_characters_stays_on_its_own_line_in_both_formats() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = logged(format);
            assert_eq!(out.lines().count(), 1, "{format:?}: {out:?}");
            assert!(out.ends_with('\n'));
            assert!(
                !out.trim_end_matches('\n').chars().any(char::is_control),
                "{format:?}: {out:?}"
            );
            assert!(out.contains("eve"), "{format:?}: {out:?}");
        }
        let json = logged(LogFormat::Json);
        let event: serde_json::Value =
            serde_json::from_str(json.trim_end()).expect("one JSON line");
        assert!(
            event["fields"]["caller"]
                .as_str()
                .is_some_and(|c| c.starts_with("eve\n"))
        );
    }

    #[test]
    fn a_text_value_cannot_forge_a_field() {
        let text = logged(LogFormat::Text);
        assert!(
            text.contains(r#"caller="eve\n2026-01-01T00:00:00Z  INFO tokend::service::audit: action=\"revoke\" caller=admin\r\u{1b}[2K""#),
            "the whole value quoted, its quotes escaped: {text}"
        );
        assert!(text.contains(" action=issue"), "{text}");
        assert_eq!(
            logfmt_value("mtls:x caller=admin"),
            r#""mtls:x caller=admin""#
        );
        assert_eq!(logfmt_value(r#"a\"b"#), r#""a\\\"b""#);
        assert_eq!(logfmt_value("alice"), "alice");
        assert_eq!(logfmt_value(""), r#""""#);
    }

    #[test]
    fn json_lines_inside_an_rpc_carry_its_trace_id() {
        let json = logged_in(LogFormat::Json, Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let event: serde_json::Value =
            serde_json::from_str(json.trim_end()).expect("one JSON line");
        assert!(
            json.starts_with(r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","#),
            "first in the line: {json}"
        );
        assert_eq!(event["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(event["span"]["trace_id"], event["trace_id"], "{json}");
        assert!(
            logged_in(LogFormat::Json, None).starts_with(r#"{"timestamp""#),
            "no trace, no field"
        );
        assert!(!json.contains('\u{1b}'), "no escape sequences: {json:?}");
    }
}
