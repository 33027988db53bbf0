//! `arbor`: the command-line program (see `arbor --help` and the product brief).

mod commands;
mod config;
mod hexline;
mod metrics;
mod serve;
mod snapshot;
mod sync;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// mimalloc: the trie allocates many small, short-lived buffers, which glibc's malloc serves
/// more slowly. Built with its `override` feature, it serves RocksDB's C++ allocations too
/// (`malloc` and `operator new`), which on glibc took 1.4× the block cache they held (see the
/// workspace `Cargo.toml`). Its settings are mimalloc's defaults (`MIMALLOC_*` environment
/// variables change them).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arbor: a Merkle key-value database with verified state sync.
#[derive(Parser)]
#[command(name = "arbor", version, about)]
struct Cli {
    /// A TOML file with one table per subcommand (e.g. `[sync]`) holding any of its flags;
    /// flags on the command line override it.
    // Declared for `--help` only: `main` takes it out of the arguments before parsing
    // (`config::take_config_flag`), since its values become the other flags' defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
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
        /// Bound the database's caches and buffers to about this many MiB (default: sized for
        /// speed, not memory).
        #[arg(long, value_parser = clap::value_parser!(u64).range(16..))]
        memory_mb: Option<u64>,
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
        #[arg(long)]
        churn_keys: Option<usize>,
        /// Milliseconds between churn commits (with --churn-keys).
        #[arg(long)]
        churn_every: Option<u64>,
        /// Stop churning after this many commits.
        #[arg(long)]
        churn_commits: Option<u64>,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        /// Bound the database's caches and buffers to about this many MiB (default: sized for
        /// speed).
        #[arg(long, value_parser = clap::value_parser!(u64).range(16..))]
        memory_mb: Option<u64>,
        /// Serve over TLS with this certificate chain (PEM; with --tls-key). Reread on SIGHUP
        /// and when the file changes, without dropping connections.
        #[arg(long, value_name = "PEM")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "PEM")]
        tls_key: Option<PathBuf>,
        /// Mutual TLS: serve only clients holding a certificate signed by this CA (PEM).
        #[arg(long, value_name = "PEM")]
        client_ca: Option<PathBuf>,
        /// Publish snapshots to this location (file://DIR, s3://BUCKET/PREFIX, gs://, az://):
        /// one at start, then one every --publish-every commits.
        #[arg(long, value_name = "URL")]
        publish: Option<String>,
        /// Commits between published snapshots.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        publish_every: u64,
        /// Snapshots kept; older ones are deleted after --publish-grace-secs.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        publish_keep: u64,
        /// Seconds an old snapshot stays readable after a newer one pushed it out.
        #[arg(long, default_value_t = 600)]
        publish_grace_secs: u64,
        /// Size of each published part, in MiB.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
        part_mb: u64,
    },
    /// Sync a database from peers to a root, verifying every proof before writing it. Exit
    /// code 0 only when the local root equals the target. Interrupted syncs resume.
    Sync {
        /// Database directory (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// A peer to fetch from, http://HOST:PORT or https://HOST:PORT (repeat for several).
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Bootstrap from the snapshot at this location first (http(s)://, s3://, gs://, az://,
        /// file://; a URL ending in .json names one manifest). Each part is checked against the
        /// trusted root; what the snapshot does not give, the peers do.
        #[arg(long, value_name = "URL")]
        snapshot: Option<String>,
        /// The snapshot's root, when it is an older root you trust (default: --root; with
        /// --follow, a root some peer proves it holds).
        #[arg(long, value_name = "HEX")]
        snapshot_root: Option<String>,
        /// Seconds before a snapshot part's download is abandoned (it is retried, then fetched
        /// from peers).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        snapshot_timeout: u64,
        /// The trusted target root (64 hex characters).
        #[arg(long)]
        root: Option<String>,
        /// Take the target from the roots the peers announce and retarget as they change.
        #[arg(long)]
        follow: bool,
        /// With --follow: finish once synced and no newer root came for this many milliseconds.
        #[arg(long, default_value_t = 2000)]
        quiet_ms: u64,
        /// With --follow: never finish; keep following new roots.
        #[arg(long)]
        live: bool,
        /// With --follow: accept plaintext (http://) peers. Follow mode trusts the roots peers
        /// announce, so without TLS anyone on the path could choose the state you sync to.
        #[arg(long)]
        insecure_follow: bool,
        /// Check https:// peers against this CA (PEM) instead of the system's roots.
        #[arg(long, value_name = "PEM")]
        ca: Option<PathBuf>,
        /// Mutual TLS: present this certificate chain (PEM; with --client-key) to https:// peers.
        #[arg(long, value_name = "PEM")]
        client_cert: Option<PathBuf>,
        /// The private key of --client-cert (PEM).
        #[arg(long, value_name = "PEM")]
        client_key: Option<PathBuf>,
        /// Requests in flight at the least; more on long links (see --inflight-mb).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
        workers: u64,
        /// Bound on the answers in flight, in MiB (each counted at the 2 MB answer limit): on a
        /// long round trip the sync sends more requests at once, up to this.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(2..))]
        inflight_mb: u64,
        /// Print progress and the summary as JSON lines on stdout.
        #[arg(long)]
        json: bool,
        /// Milliseconds between progress reports.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        progress_ms: u64,
        /// Give up (exit non-zero) when no peer has answered usefully for this many seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        give_up_after: u64,
        /// Seconds before an unanswered request is abandoned and its peer backs off.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        request_timeout: u64,
        /// Memory budget of the local database's caches and buffers, in MiB (the process
        /// also holds up to 2 × workers answers of at most 2 MB each).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..))]
        memory_mb: u64,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Snapshots in object storage.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
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

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Publish the database's current state as a snapshot: parts (range proofs of about
    /// --part-mb each, named by their SHA-256), then its manifest, then manifest.json.
    Publish {
        /// Database directory.
        #[arg(long)]
        db: PathBuf,
        /// Where: file://DIR, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Size of each part, in MiB.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
        part_mb: u64,
    },
}

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing to do).
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`), so every first touch of a
/// region, and every touch after mimalloc handed a part of it back, makes the kernel zero
/// 2 MiB. A sync receives and frees answers of up to 2 MB at a high rate: with huge pages its
/// client spent 0.5–1.0 s of a 2-second, 1M-key sync zeroing pages (`clear_page_erms`, 21% of
/// its samples), against 0.3 s of system time without them (BENCHMARKS.md, "Long links").
/// Commits (`arbor load`) neither gain nor lose. The flag covers RocksDB's memory too, and is
/// inherited by child processes.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // An error (a kernel before 3.15) leaves the process as it was: slower, not wrong.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

fn main() -> anyhow::Result<()> {
    disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(file) = config::take_config_flag(&mut args)? {
        command = config::with_file_defaults(command, std::path::Path::new(&file))?;
    }
    let cli = Cli::from_arg_matches(&command.get_matches_from(args)).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Load {
            db,
            keys,
            seed,
            value_size,
            batch,
            memory_mb,
        } => commands::load(&db, keys, seed, value_size, batch, memory_mb),
        Command::Root { db } => commands::root(&db),
        Command::Import { db, file } => commands::import(&db, file.as_deref()),
        Command::Serve {
            db,
            listen,
            history,
            churn_keys,
            churn_every,
            churn_commits,
            metrics,
            memory_mb,
            tls_cert,
            tls_key,
            client_ca,
            publish,
            publish_every,
            publish_keep,
            publish_grace_secs,
            part_mb,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(serve::TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
                (None, None) if client_ca.is_none() => None,
                _ => anyhow::bail!("--tls-cert and --tls-key go together (--client-ca needs both)"),
            };
            // Checked here, not by clap, so that flags and config-file values obey the same rules.
            let churn = match (churn_keys, churn_every) {
                (Some(keys), Some(every)) => Some(serve::Churn {
                    keys,
                    every: std::time::Duration::from_millis(every),
                    commits: churn_commits,
                }),
                (None, None) if churn_commits.is_none() => None,
                _ => anyhow::bail!(
                    "--churn-keys and --churn-every go together (--churn-commits needs both)"
                ),
            };
            let publisher = publish
                .map(|url| {
                    anyhow::Ok(snapshot::Publisher {
                        location: snapshot::Location::parse(&url)?,
                        every: publish_every,
                        keep: usize::try_from(publish_keep)?,
                        grace: std::time::Duration::from_secs(publish_grace_secs),
                        part_bytes: usize::try_from(part_mb)? << 20,
                    })
                })
                .transpose()?;
            serve::run(
                &db,
                serve::Options {
                    listen,
                    history,
                    churn,
                    metrics,
                    memory_mb,
                    tls,
                    publisher,
                },
            )
        }
        Command::Sync {
            db,
            peers,
            snapshot,
            snapshot_root,
            snapshot_timeout,
            root,
            follow,
            quiet_ms,
            live,
            insecure_follow,
            ca,
            client_cert,
            client_key,
            workers,
            inflight_mb,
            json,
            progress_ms,
            give_up_after,
            request_timeout,
            memory_mb,
            metrics,
        } => {
            // Checked here, not by clap, so that flags and config-file values obey the same rules.
            if live && !follow {
                anyhow::bail!("--live needs --follow");
            }
            if peers.is_empty() && snapshot.is_none() {
                anyhow::bail!("give at least one --peer (or a --snapshot)");
            }
            if snapshot_root.is_some() && snapshot.is_none() {
                anyhow::bail!("--snapshot-root needs --snapshot");
            }
            let snapshot = snapshot
                .map(|url| {
                    let root = snapshot_root
                        .map(|hex| {
                            arbor_merkledb::Hash::from_hex(&hex).ok_or_else(|| {
                                anyhow::anyhow!(
                                    "--snapshot-root {hex:?}: expected 64 hex characters"
                                )
                            })
                        })
                        .transpose()?;
                    anyhow::Ok(sync::SnapshotOptions {
                        url,
                        root,
                        part_timeout: std::time::Duration::from_secs(snapshot_timeout),
                    })
                })
                .transpose()?;
            let identity = match (client_cert, client_key) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!("--client-cert and --client-key go together"),
            };
            let tls = arbor_sync::tls::ClientTls::from_files(
                ca.as_deref(),
                identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            )?;
            let target = match (root, follow) {
                (Some(_), true) => anyhow::bail!("--root and --follow exclude each other"),
                (None, false) => anyhow::bail!("give the target: --root HEX or --follow"),
                (Some(hex), false) => {
                    sync::Target::Root(arbor_merkledb::Hash::from_hex(&hex).ok_or_else(|| {
                        anyhow::anyhow!("--root {hex:?}: expected 64 hex characters")
                    })?)
                }
                (None, true) => sync::Target::Follow(arbor_sync::FollowConfig {
                    quiet: std::time::Duration::from_millis(quiet_ms),
                    live,
                    ..Default::default()
                }),
            };
            if follow && !insecure_follow {
                if let Some(plain) = peers.iter().find(|p| !p.starts_with("https://")) {
                    anyhow::bail!(
                        "--follow takes its target from the roots peers announce, so they must be \
                         authenticated: {plain} is not an https:// peer (pass --insecure-follow \
                         to trust plaintext peers anyway)"
                    );
                }
            }
            let config = arbor_sync::SyncConfig {
                workers: usize::try_from(workers)?,
                inflight_bytes: usize::try_from(inflight_mb)? << 20,
                stall_timeout: std::time::Duration::from_secs(give_up_after),
                request_timeout: std::time::Duration::from_secs(request_timeout),
                ..Default::default()
            };
            let output = if json {
                sync::Output::Json
            } else {
                sync::Output::Text
            };
            sync::run(
                &db,
                sync::Options {
                    peers,
                    target,
                    config,
                    output,
                    progress_every: std::time::Duration::from_millis(progress_ms),
                    memory_bytes: usize::try_from(memory_mb)? << 20,
                    metrics,
                    tls,
                    snapshot,
                },
            )
        }
        Command::Snapshot(SnapshotCommand::Publish { db, to, part_mb }) => {
            snapshot::publish_command(&db, &to, part_mb)
        }
        Command::Export { db, start, end } => {
            commands::export(&db, start.as_deref(), end.as_deref())
        }
    }
}
