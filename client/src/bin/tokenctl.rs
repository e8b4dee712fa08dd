//! tokenctl: issue, revoke, validate and list tokend tokens, and write kubeconfigs, from a shell.

fn main() -> std::process::ExitCode {
    tokend_client::cli::main()
}
