//! Tracing setup: the only place log output is configured. Every line written is one event:
//! control characters inside it (a newline in a certificate name, an escape sequence) are
//! written escaped, so no logged value can forge a second line or rewrite a terminal.

use std::io;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber: `RUST_LOG` filter (default `info`), text or JSON lines on stderr.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours are escape sequences, which the writer would escape.
        .with_ansi(false)
        .with_writer(Escaping(io::stderr));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
        let captured = Captured::default();
        let sink = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(Escaping(move || sink.clone()));
        let forged = "eve\n2026-01-01T00:00:00Z  INFO tokend::service::audit: action=\"revoke\" caller=admin\r\u{1b}[2K";
        let emit =
            || tracing::info!(target: "tokend::service::audit", caller = %forged, action = "issue");
        match format {
            LogFormat::Text => tracing::subscriber::with_default(builder.finish(), emit),
            LogFormat::Json => tracing::subscriber::with_default(builder.json().finish(), emit),
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
}
