//! `tokenctl man`: the man page, rendered by clap_mangen from the same clap definition as
//! `--help`, with sections for the environment and the exit codes.

use std::io::Write;

use super::exit::ExitStatus;

/// The environment variables tokenctl reads, and what for.
const ENVIRONMENT: [(&str, &str); 7] = [
    ("TOKEND_ADDR", "tokend's address, as --addr."),
    (
        "TOKEND_TOKEN",
        "A bearer token. Used when neither --token-env nor --token-file is given; wins over TOKEND_TOKEN_FILE.",
    ),
    (
        "TOKEND_TOKEN_FILE",
        "A file holding the bearer token, as --token-file (the flag wins over TOKEND_TOKEN; this variable does not).",
    ),
    ("TOKEND_CA", "The CA bundle, as --ca."),
    ("TOKEND_CERT", "The client certificate, as --cert."),
    ("TOKEND_KEY", "The client key, as --key."),
    (
        "KUBECONFIG",
        "The kubeconfig files whose current context's namespace is the default for -n, and that kubeconfig --merge writes to.",
    ),
];

/// Escapes text for a roff paragraph: backslashes and hyphens, and a leading dot or quote.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The man page of tokenctl (`subcommand` `None`) or of one subcommand (`tokenctl-issue(1)`), as
/// roff; `command` is tokenctl's whole clap command.
pub(crate) fn man_page(command: clap::Command, subcommand: Option<&str>) -> Result<String, String> {
    let page = match subcommand {
        None => command.after_help(super::args::EXAMPLES),
        Some(name) => {
            // Built, so that the global connection flags show on the subcommand's page too.
            let mut command = command;
            command.build();
            let sub = command
                .find_subcommand(name)
                .ok_or_else(|| format!("no subcommand {name:?}"))?
                .clone();
            sub.display_name(format!("tokenctl-{name}"))
                .bin_name(format!("tokenctl {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    let examples = page
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let man = clap_mangen::Man::new(page);
    render(&man, &examples).map_err(|e| e.to_string())
}

/// The sections of one page: clap_mangen's, then the environment, exit codes and examples.
fn render(man: &clap_mangen::Man, examples: &str) -> std::io::Result<String> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    writeln!(out, ".SH ENVIRONMENT")?;
    for (name, meaning) in ENVIRONMENT {
        writeln!(out, ".TP\n\\fB{name}\\fR\n{}", roff_text(meaning))?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for status in ExitStatus::ALL {
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            status.code(),
            roff_text(status.meaning())
        )?;
    }
    let examples = examples.strip_prefix("Examples:\n").unwrap_or(examples);
    if !examples.trim().is_empty() {
        // Kept as written (no filling), as the lines are commands to copy.
        writeln!(out, ".SH EXAMPLES\n.nf")?;
        for line in examples.lines() {
            writeln!(out, "{}", roff_text(line))?;
        }
        writeln!(out, ".fi")?;
    }
    man.render_version_section(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_escapes_what_roff_would_interpret() {
        assert_eq!(roff_text("-n a\\b"), "\\-n a\\eb");
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
    }
}
