//! `arbor`: the command-line program (see `arbor --help` and the product brief).

mod commands;
mod hexline;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc: the trie allocates many small, short-lived buffers; glibc malloc spent ~25% of a
/// bulk load in malloc/free and consolidation.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arbor: a Merkle key-value database with verified state sync.
#[derive(Parser)]
#[command(name = "arbor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add N deterministic random key-values (32-byte keys) in commits of K; print the root.
    Load {
        /// Database directory (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Number of key-values to add.
        #[arg(long)]
        keys: u64,
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 32)]
        value_size: usize,
        /// Key-values per commit.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Print the root (64 lowercase hex characters), then the key count.
    Root {
        /// Database directory.
        #[arg(long)]
        db: PathBuf,
    },
    /// Apply a batch from FILE or stdin ("HEXKEY HEXVALUE" puts, "HEXKEY" deletes; "-" is the
    /// empty string) in one commit; print the root.
    Import {
        /// Database directory (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Input file; stdin when absent.
        file: Option<PathBuf>,
    },
    /// Serve range and change proofs over gRPC (the StateSync service), optionally churning.
    Serve {
        /// Database directory (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Address to listen on, e.g. 127.0.0.1:7000 (port 0 picks a free port).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Commits of history kept for change proofs and older roots.
        #[arg(long, default_value_t = 128)]
        history: usize,
        /// Random puts/deletes per churn commit (a stand-in for a chain producing blocks).
        #[arg(long, requires = "churn_every")]
        churn_keys: Option<usize>,
        /// Milliseconds between churn commits.
        #[arg(long, requires = "churn_keys")]
        churn_every: Option<u64>,
        /// Stop churning after this many commits.
        #[arg(long, requires = "churn_keys")]
        churn_commits: Option<u64>,
    },
    /// Print "HEXKEY HEXVALUE" lines in key order, for keys in [start, end] (both inclusive).
    Export {
        /// Database directory.
        #[arg(long)]
        db: PathBuf,
        /// First key (inclusive), hex.
        #[arg(long)]
        start: Option<String>,
        /// Last key (inclusive), hex.
        #[arg(long)]
        end: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Load {
            db,
            keys,
            seed,
            value_size,
            batch,
        } => commands::load(&db, keys, seed, value_size, batch),
        Command::Root { db } => commands::root(&db),
        Command::Import { db, file } => commands::import(&db, file.as_deref()),
        Command::Serve {
            db,
            listen,
            history,
            churn_keys,
            churn_every,
            churn_commits,
        } => {
            let churn = churn_keys
                .zip(churn_every)
                .map(|(keys, every)| serve::Churn {
                    keys,
                    every: std::time::Duration::from_millis(every),
                    commits: churn_commits,
                });
            serve::run(&db, listen, history, churn)
        }
        Command::Export { db, start, end } => {
            commands::export(&db, start.as_deref(), end.as_deref())
        }
    }
}
