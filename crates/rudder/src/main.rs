//! The `rudder` binary: flags, logging and the subcommands. Each
//! subcommand lives in its own module; this file only dispatches.

mod agent;
mod image;
mod node;
mod server;

use clap::{Parser, Subcommand};

/// JSON-heavy request handling allocates constantly: mimalloc is faster
/// than glibc's malloc at it and fragments less (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `rudder --version`: the release and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUDDER_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "rudder",
    version = VERSION,
    about = "A Kubernetes-compatible container orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane and a node agent for this machine.
    Server(Box<server::Args>),
    /// Join a cluster as a node: run the node agent for this machine.
    Agent(Box<agent::Args>),
    /// Manage the images of this node's container runtime.
    Image(image::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUDDER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line, no backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server::run(*args)),
        Command::Image(args) => runtime.block_on(image::run(args)),
        Command::Agent(args) => runtime.block_on(agent::run(*args)),
    }
}
