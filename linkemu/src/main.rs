//! `arbor-linkemu`: one emulated link as a process, for benchmark scripts.
//!
//! ```text
//! arbor-linkemu --listen 127.0.0.1:0 --to 127.0.0.1:7000 [--rtt-ms 100] [--mbit 100] [--queue-kb 256]
//! ```
//!
//! Prints `listening on ADDR`, then forwards every connection to `--to` through the link until
//! SIGTERM or Ctrl-C.

use std::{io::Write, net::SocketAddr, time::Duration};

use arbor_linkemu::{Link, LinkConfig};
use clap::Parser;

/// An emulated network link in front of a TCP server.
#[derive(Parser)]
#[command(name = "arbor-linkemu", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long)]
    listen: SocketAddr,
    /// The server behind the link.
    #[arg(long)]
    to: SocketAddr,
    /// Round trip added by the link, in milliseconds (half each way).
    #[arg(long, default_value_t = 0.0)]
    rtt_ms: f64,
    /// Bandwidth of each direction in Mbit/s (default: unlimited).
    #[arg(long)]
    mbit: Option<f64>,
    /// Bottleneck queue of each direction, in KiB.
    #[arg(long, default_value_t = 256)]
    queue_kb: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rtt_ms >= 0.0, "--rtt-ms must not be negative");
    let config = LinkConfig {
        one_way_latency: Duration::from_secs_f64(args.rtt_ms / 2000.0),
        bandwidth_bytes_per_sec: args.mbit.map(|m| (m * 1e6 / 8.0).max(1.0) as u64),
        queue_bytes: args.queue_kb << 10,
    };
    let link = Link::start(args.listen, args.to, config).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", link.addr())?;
    out.flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
