//! The `qianbao-banksim` binary: `serve` runs the simulator until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use banksim::config::{self, ConfigSources};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "qianbao-banksim", about = "A bank and payment-channel simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulator's HTTP server.
    Serve(ServeArgs),
    /// Print the effective configuration as JSON and exit.
    Config(ConfigArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (read it from the start-up line).
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// The root of every random decision (overrides the file's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// A TOML or JSON configuration file (by extension; anything but .json is TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one setting: `--set channels.bank_a.fees.debit.bps=12` (value as JSON,
    /// else as a string). Repeatable; applied after the file.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Start every channel with no faults and no latency.
    #[arg(long)]
    no_faults: bool,
}

fn main() -> anyhow::Result<()> {
    // A broken invariant (money not conserved) must stop the simulator, not just the task
    // that noticed it: tokio would otherwise catch the panic and keep serving.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Config(args) => {
            let config = load_config(&args)?;
            println!("{}", serde_json::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<config::SimConfig> {
    let sources = ConfigSources {
        file: args.config.as_deref(),
        sets: &args.sets,
        seed: args.seed,
        no_faults: args.no_faults,
    };
    Ok(config::load(&sources)?)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "the admin API is unauthenticated; listen on loopback only");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Installed before the start-up line, so a SIGTERM sent as soon as that line appears
        // is a clean stop and not the default kill.
        let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        let simulator = banksim::api::Simulator::new(&config)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Tests and scripts read this exact line to find the port.
        eprintln!("banksim listening on http://{address}");
        banksim::serve::serve(
            listener,
            banksim::api::router(simulator),
            shutdown_signal(terminate),
        )
        .await;
        Ok(())
    })
}

async fn shutdown_signal(mut terminate: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
