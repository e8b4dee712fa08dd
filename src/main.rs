//! The `tokend` binary: `serve`, and with the default `dev` feature `dev` (with the embedded
//! emulator) and `emulator`.

use clap::Parser;
use tokio::net::TcpListener;

use tokend::config::{Cli, Command};
use tokend::{server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let telemetry = telemetry::init(cli.log_format);
    let result = run(cli.command).await;
    // The exporter's last batch goes out over the runtime this thread would otherwise block.
    tokio::task::block_in_place(|| telemetry.shutdown());
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let options = server::ServerOptions::from_args(&args, false)?;
            let kube_config = server::kube_config(args.kubeconfig.as_deref()).await?;
            let listener = TcpListener::bind(args.listen).await?;
            server::run(kube_config, options, listener, server::shutdown_signal()).await?;
        }
        #[cfg(feature = "dev")]
        Command::Dev(args) => tokend::dev::run_dev(args).await?,
        Command::Crd => print!("{}", tokend::controller::resource::crd_yaml()),
        #[cfg(feature = "dev")]
        Command::Emulator(args) => tokend::dev::run_emulator(args).await?,
    }
    Ok(())
}
