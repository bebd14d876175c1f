//! One module per command.

pub mod apikey;
pub mod audit;
pub mod bench;
pub mod bench_records;
pub mod bench_vault;
pub mod keys;
pub mod loadgen;
pub mod policy;
pub mod scan;
pub mod serve;

use crate::args::Command;
use crate::config::Settings;
use crate::Failure;

/// Runs a command.
pub async fn run(command: Command, settings: Settings) -> Result<(), Failure> {
    match command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Policy(cmd) => policy::run(cmd),
        Command::Audit(cmd) => audit::run(cmd, &settings).await,
        Command::Apikey(cmd) => apikey::run(cmd, &settings).await,
        Command::Keys(cmd) => keys::run(cmd, &settings).await,
        Command::Scan(args) => scan::run(args),
        Command::Bench(args) => bench::run(args).await,
    }
}
