//! # charter (command line)
//!
//! A thin layer: parse arguments, resolve settings, call the library crates.
//!
//! ## Layout
//! - [`args`]: the command tree (clap).
//! - [`config`]: settings from flags, `CHARTER_*` variables and a config file, in that order.
//! - `commands/`: one module per command: `serve`, `policy`, `audit`, `bench`.
//! - [`telemetry`]: log set-up (text or JSON, on stderr).

pub mod args;
pub mod commands;
pub mod config;
pub mod telemetry;

use std::process::ExitCode;

use clap::Parser as _;

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub enum Failure {
    /// The input was refused (exit 2); the message was already printed.
    Refused,
    /// A command's own outcome code (e.g. `policy diff`: 1 immaterial, 3 material).
    Code(u8),
    /// Something went wrong (exit 1).
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Error(e)
    }
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let settings = match config::Settings::resolve(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused) => ExitCode::from(2),
        Err(Failure::Code(c)) => ExitCode::from(c),
        Err(Failure::Error(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
