//! pktgen — traffic generator and sink for benchmarks (in progress).

/// `xdpswitch pktgen ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PktgenCmd {}

/// Runs a pktgen subcommand.
pub fn run(cmd: PktgenCmd) -> anyhow::Result<()> {
    match cmd {}
}
