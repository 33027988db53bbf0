//! `arbor sync`: bring a local database to a root held by peers, verifying every proof.

use std::{io::Write, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use arbor_merkledb::{Config, Db, Hash};
use arbor_sync::snapshot::{
    BootstrapConfig, BootstrapError, BootstrapReport, PartEvent, PartObserver, PartStatus,
    bootstrap,
};
use arbor_sync::{
    FollowConfig, GrpcClient, PeerStats, Progress, SyncClient, SyncConfig, SyncError, SyncManager,
    follow,
};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::{SyncMetrics, serve_metrics};

/// What to sync to.
pub(crate) enum Target {
    /// A root given by the operator (the trusted root).
    Root(Hash),
    /// The newest root the peers announce.
    Follow(FollowConfig),
}

/// How progress is shown.
#[derive(Clone, Copy)]
pub(crate) enum Output {
    /// One JSON object per line on stdout.
    Json,
    /// Human-readable: a bar on a terminal, periodic lines otherwise (stderr).
    Text,
}

/// Settings of `arbor sync`.
pub(crate) struct Options {
    pub peers: Vec<String>,
    pub target: Target,
    pub config: SyncConfig,
    pub output: Output,
    pub progress_every: Duration,
    /// Memory budget of the local database, in bytes.
    pub memory_bytes: usize,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// How `https://` peers are checked, and the client certificate, if any.
    pub tls: arbor_sync::tls::ClientTls,
    /// A snapshot to bootstrap from before asking peers, if any.
    pub snapshot: Option<SnapshotOptions>,
}

/// `--snapshot URL [--snapshot-root HEX]`.
pub(crate) struct SnapshotOptions {
    pub url: String,
    /// An older root the operator trusts for the snapshot.
    pub root: Option<Hash>,
    pub part_timeout: Duration,
}

/// Checks peer URLs up front, so a typo is reported as such and not as an unreachable peer.
fn check_peers(peers: &[String]) -> anyhow::Result<()> {
    if peers.is_empty() {
        bail!("give at least one --peer http://HOST:PORT or https://HOST:PORT");
    }
    for url in peers {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .with_context(|| {
                format!("peer {url:?}: expected http://HOST:PORT or https://HOST:PORT")
            })?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .with_context(|| format!("peer {url:?}: missing :PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!("peer {url:?}: expected a numeric port");
        }
    }
    Ok(())
}

pub(crate) fn run(path: &Path, options: Options) -> anyhow::Result<()> {
    if options.snapshot.is_none() || !options.peers.is_empty() {
        check_peers(&options.peers)?;
    }
    // No history while syncing: the roots a sync passes through are partial states nobody will
    // ask a proof of, and their undo records would be a large share of the client's writes.
    // `arbor serve` on the replica keeps history again from its synced root on.
    let db = Db::open(
        path,
        Config::default()
            .with_memory_budget(options.memory_bytes)
            .with_history_len(0)
            .for_bulk_writes(),
    )
    .with_context(|| format!("opening database {}", path.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(sync(db.clone(), options));
    db.close().context("closing the database")?;
    result
}

async fn sync(db: Db, options: Options) -> anyhow::Result<()> {
    let client: Arc<dyn SyncClient> =
        Arc::new(GrpcClient::connect_lazy_tls(&options.peers, &options.tls)?);
    let (progress_tx, progress_rx) = watch::channel(None::<Progress>);
    let cancel = CancellationToken::new();
    let metrics = match options.metrics {
        Some(addr) => {
            let mut registry = prometheus_client::registry::Registry::default();
            let metrics = SyncMetrics::register(&mut registry);
            let (listener, addr) = arbor_sync::bind(addr)
                .await
                .with_context(|| format!("binding the metrics endpoint {addr}"))?;
            eprintln!("metrics on http://{addr}/metrics");
            tokio::spawn(serve_metrics(
                Arc::new(registry),
                listener,
                std::future::pending(),
            ));
            Some(metrics)
        }
        None => None,
    };
    let from_storage = match &options.snapshot {
        Some(snapshot) => from_snapshot(&db, &client, &options, snapshot, metrics.clone()).await?,
        None => None,
    };
    let reporter = tokio::spawn(report(
        progress_rx,
        options.output,
        options.progress_every,
        metrics.clone(),
    ));
    let work = {
        let mut config = options.config.clone();
        config.observer = metrics
            .clone()
            .map(|m| m as Arc<dyn arbor_sync::SyncObserver>);
        let (db, client, cancel) = (db.clone(), client.clone(), cancel.clone());
        async move {
            match options.target {
                Target::Root(root) => {
                    let manager = SyncManager::start(db, client, root, config)?;
                    let handle = manager.handle();
                    let mut updates = manager.progress();
                    // Forwards progress and cancellation until aborted after the sync ends.
                    let forward = tokio::spawn(async move {
                        loop {
                            tokio::select! {
                                Ok(()) = updates.changed() => {
                                    let p = updates.borrow_and_update().clone();
                                    progress_tx.send_replace(Some(p));
                                }
                                () = cancel.cancelled() => {
                                    handle.cancel();
                                    return;
                                }
                                else => return,
                            }
                        }
                    });
                    let result = manager.wait().await;
                    forward.abort();
                    result
                }
                Target::Follow(follow_config) => {
                    follow(db, client, config, follow_config, progress_tx, cancel).await
                }
            }
        }
    };
    tokio::pin!(work);
    let result = tokio::select! {
        result = &mut work => result,
        () = crate::serve::shutdown_signal() => {
            eprintln!("interrupted: stopping; progress is saved and a rerun resumes");
            cancel.cancel();
            work.await
        }
    };
    reporter.abort();
    let summary = match result {
        Ok(summary) => summary,
        // The error names every peer with its last error.
        Err(error @ SyncError::Stalled { .. }) => bail!("{error}; giving up"),
        Err(error) => return Err(error.into()),
    };
    let root = db.root()?;
    if root != summary.target {
        bail!("finished at root {root}, expected {}", summary.target);
    }
    let mut out = std::io::stdout();
    match options.output {
        Output::Json => {
            let line = DoneLine {
                event: "done",
                root: root.to_hex(),
                key_count: db.key_count()?,
                keys_written: summary.keys,
                bytes: summary.bytes,
                range_bytes: summary.range_bytes,
                change_bytes: summary.change_bytes,
                diff_bytes: summary.diff_bytes,
                seconds: summary.elapsed.as_secs_f64(),
                proofs_accepted: summary.proofs_accepted,
                proofs_rejected: summary.proofs_rejected,
                peers: &summary.peers,
                snapshot_keys: from_storage.as_ref().map_or(0, |r| r.keys),
                snapshot_bytes: from_storage.as_ref().map_or(0, |r| r.bytes),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
        Output::Text => {
            writeln!(out, "root {}", root.to_hex())?;
            writeln!(
                out,
                "keys {} (written {}), {} bytes received in {:.2} s ({:.0} keys/s): {} in \
                 range proofs, {} in change proofs, {} in node diffs",
                db.key_count()?,
                summary.keys,
                summary.bytes,
                summary.elapsed.as_secs_f64(),
                summary.keys_per_sec(),
                summary.range_bytes,
                summary.change_bytes,
                summary.diff_bytes
            )?;
            if let Some(report) = &from_storage {
                writeln!(
                    out,
                    "from the snapshot before that: {} keys written, {} bytes in {:.2} s",
                    report.keys,
                    report.bytes,
                    report.elapsed.as_secs_f64()
                )?;
            }
        }
    }
    Ok(())
}

/// The `--json` summary line.
#[derive(Serialize)]
struct DoneLine<'a> {
    event: &'static str,
    root: String,
    key_count: u64,
    keys_written: u64,
    bytes: u64,
    /// Of `bytes`: range proofs, change proofs, node diffs.
    range_bytes: u64,
    change_bytes: u64,
    diff_bytes: u64,
    seconds: f64,
    proofs_accepted: u64,
    proofs_rejected: u64,
    peers: &'a [PeerStats],
    /// Written from a snapshot before the peers were asked (0 without `--snapshot`).
    snapshot_keys: u64,
    snapshot_bytes: u64,
}

/// A `--json` progress line.
#[derive(Serialize)]
struct ProgressLine<'a> {
    event: &'static str,
    target: String,
    /// `proofs` (range and change proofs) or `diff` (node diffs: the replica's root is in no
    /// peer's history).
    mode: &'static str,
    percent: f64,
    keys_written: u64,
    bytes: u64,
    range_bytes: u64,
    change_bytes: u64,
    diff_bytes: u64,
    keys_per_sec: f64,
    eta_seconds: Option<f64>,
    seconds: f64,
    proofs_accepted: u64,
    proofs_rejected: u64,
    peers: &'a [PeerStats],
}

/// Shows progress until aborted.
async fn report(
    mut rx: watch::Receiver<Option<Progress>>,
    output: Output,
    every: Duration,
    metrics: Option<Arc<SyncMetrics>>,
) {
    use std::io::IsTerminal;
    let bar = (matches!(output, Output::Text) && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(10_000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        let Some(p) = rx.borrow_and_update().clone() else {
            continue;
        };
        if let Some(metrics) = &metrics {
            metrics.update(&p);
        }
        let eta = p
            .eta
            .map_or_else(|| "?".to_owned(), |d| format!("{:.0}s", d.as_secs_f64()));
        // A peer counts as useful once it has answered.
        let live = p.peers.iter().filter(|x| x.answers > 0).count();
        let per_peer = per_peer_line(&p);
        match (&bar, output) {
            (_, Output::Json) => {
                let line = ProgressLine {
                    event: "progress",
                    target: p.target.to_hex(),
                    mode: p.mode.as_str(),
                    percent: p.fraction * 100.0,
                    keys_written: p.keys,
                    bytes: p.bytes,
                    range_bytes: p.range_bytes,
                    change_bytes: p.change_bytes,
                    diff_bytes: p.diff_bytes,
                    keys_per_sec: p.keys_per_sec(),
                    eta_seconds: p.eta.map(|d| d.as_secs_f64()),
                    seconds: p.elapsed.as_secs_f64(),
                    proofs_accepted: p.proofs_accepted,
                    proofs_rejected: p.proofs_rejected,
                    peers: &p.peers,
                };
                let mut out = std::io::stdout();
                if let Ok(line) = serde_json::to_string(&line) {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
            (Some(bar), Output::Text) => {
                bar.set_position((p.fraction * 10_000.0) as u64);
                bar.set_message(format!(
                    "{}{} keys, {:.0} keys/s, ETA {eta}, {live}/{} peers{per_peer}",
                    mode_label(&p),
                    p.keys,
                    p.keys_per_sec(),
                    p.peers.len()
                ));
            }
            (None, Output::Text) => {
                eprintln!(
                    "{:5.1}% {}{} keys {:.0} keys/s ETA {eta} peers {live}/{}{per_peer}",
                    p.fraction * 100.0 + 0.0,
                    mode_label(&p),
                    p.keys,
                    p.keys_per_sec(),
                    p.peers.len()
                );
            }
        }
    }
}

/// What the text progress line says of the mode: nothing for proofs, `diff` while the
/// replica's trie is compared with the target's node by node.
fn mode_label(p: &Progress) -> &'static str {
    match p.mode {
        arbor_sync::SyncMode::Diff => "diff ",
        arbor_sync::SyncMode::Proofs => "",
    }
}

/// Per-peer figures for the text progress line: round trip, goodput, share of the keys written
/// and requests in flight, for the peers present (at most six, busiest first).
fn per_peer_line(p: &Progress) -> String {
    let mut peers: Vec<&PeerStats> = p.peers.iter().filter(|x| !x.departed).collect();
    peers.sort_by_key(|x| std::cmp::Reverse(x.keys));
    let total = p.keys.max(1) as f64;
    let shown: Vec<String> = peers
        .iter()
        .take(6)
        .map(|x| {
            let name = x.name.rsplit("://").next().unwrap_or(&x.name);
            let rtt = x
                .latency_ms
                .map_or_else(|| "?".to_owned(), |ms| format!("{ms:.0}ms"));
            format!(
                "{name} {rtt} {:.1}MB/s {:.0}% {}in",
                x.goodput_bytes_per_sec / 1e6,
                x.keys as f64 * 100.0 / total,
                x.in_flight
            )
        })
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!(" [{}]", shown.join(", "))
    }
}

/// Bootstraps from a snapshot before the peers are asked. A snapshot that cannot be used (not
/// found, of an untrusted root, for another branch factor) is reported and the sync goes on
/// from the peers; with no peers, that is an error.
async fn from_snapshot(
    db: &Db,
    client: &Arc<dyn SyncClient>,
    options: &Options,
    snapshot: &SnapshotOptions,
    metrics: Option<Arc<SyncMetrics>>,
) -> anyhow::Result<Option<BootstrapReport>> {
    let output = options.output;
    let refuse = |why: String| -> anyhow::Result<Option<BootstrapReport>> {
        if options.peers.is_empty() {
            bail!(
                "snapshot {}: {why}; and no --peer to sync from instead",
                snapshot.url
            );
        }
        match output {
            Output::Json => json_line(&SnapshotRefused {
                event: "snapshot_refused",
                url: &snapshot.url,
                reason: &why,
            }),
            Output::Text => eprintln!(
                "snapshot {} not used: {why}; syncing from peers",
                snapshot.url
            ),
        }
        Ok(None)
    };
    let read = crate::snapshot::Location::manifest(&snapshot.url);
    let (location, manifest) = match tokio::time::timeout(snapshot.part_timeout, read).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => return refuse(format!("{error:#}")),
        Err(_) => {
            return refuse(format!(
                "its manifest did not arrive within {:?}",
                snapshot.part_timeout
            ));
        }
    };
    let target = match &options.target {
        Target::Root(root) => Some(*root),
        Target::Follow(_) => None,
    };
    // The root the operator trusts for the snapshot (`bootstrap` refuses a manifest of
    // another): `--snapshot-root`, else `--root`, else (follow mode) one a peer proves it holds.
    let trusted = match snapshot.root.or(target) {
        Some(root) => root,
        None => {
            let timeout = options.config.request_timeout;
            match held_by_a_peer(client, manifest.root, db.branch_factor(), timeout).await {
                Ok(root) => root,
                Err(why) => return refuse(why),
            }
        }
    };
    let observer = part_observer(options, manifest.parts.len(), metrics);
    let config = BootstrapConfig {
        part_timeout: snapshot.part_timeout,
        inflight_bytes: options.config.inflight_bytes.min(256 << 20),
        observer: Some(observer),
        ..BootstrapConfig::default()
    };
    let report = match bootstrap(db.clone(), Arc::new(location), &manifest, trusted, config).await {
        Ok(report) => report,
        Err(
            error @ (BootstrapError::UntrustedRoot { .. } | BootstrapError::BranchFactor { .. }),
        ) => {
            return refuse(error.to_string());
        }
        Err(error) => return Err(error.into()),
    };
    match output {
        Output::Json => json_line(&SnapshotLine {
            event: "snapshot",
            url: &snapshot.url,
            root: manifest.root.to_hex(),
            parts: report.parts,
            applied: report.applied,
            held: report.held,
            not_needed: report.not_needed,
            failed: report.failed.len(),
            defects: &report.defects,
            keys_written: report.keys,
            bytes: report.bytes,
            seconds: report.elapsed.as_secs_f64(),
            percent: report.fraction * 100.0,
        }),
        Output::Text => {
            for defect in &report.defects {
                eprintln!("snapshot manifest: {defect}");
            }
            eprintln!(
                "snapshot {}: {} of {} parts applied ({} already held), {} keys, {} bytes in \
                 {:.2} s; {:.1}% of the keyspace at root {}{}",
                snapshot.url,
                report.applied,
                report.parts,
                report.held,
                report.keys,
                report.bytes,
                report.elapsed.as_secs_f64(),
                report.fraction * 100.0,
                manifest.root,
                if report.failed.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} parts failed, their ranges come from peers",
                        report.failed.len()
                    )
                }
            );
        }
    }
    if options.peers.is_empty() && report.fraction < 1.0 {
        bail!(
            "the snapshot covered {:.1}% of the keyspace and no --peer was given for the rest",
            report.fraction * 100.0
        );
    }
    Ok(Some(report))
}

/// Reports each snapshot part as it settles: metrics, a JSON line or (text) a line for a
/// failed part, and a progress line at most every `--progress-ms`.
fn part_observer(
    options: &Options,
    parts: usize,
    metrics: Option<Arc<SyncMetrics>>,
) -> PartObserver {
    let started = std::time::Instant::now();
    let shown = std::sync::Mutex::new((started, 0u64, 0u64, 0usize));
    let (output, every) = (options.output, options.progress_every);
    Arc::new(move |event: &PartEvent| {
        if let Some(metrics) = &metrics {
            metrics.snapshot_part(event);
        }
        let reason = match &event.status {
            PartStatus::Failed { reason } => Some(reason.as_str()),
            _ => None,
        };
        let line = shown.lock().ok().and_then(|mut shown| {
            let (last, keys, bytes, settled) = &mut *shown;
            if let PartStatus::Applied { keys: k } = event.status {
                *keys += k;
                *bytes += event.bytes;
            }
            *settled += 1;
            let now = std::time::Instant::now();
            (now.duration_since(*last) >= every || *settled == parts).then(|| {
                *last = now;
                let secs = now.duration_since(started).as_secs_f64().max(1e-3);
                let eta = (event.fraction > 0.0)
                    .then(|| secs * (1.0 - event.fraction).max(0.0) / event.fraction)
                    .map_or_else(|| "?".to_owned(), |s| format!("{s:.0}s"));
                format!(
                    "snapshot {:5.1}% {} keys {:.0} keys/s {:.1} MB/s ETA {eta} parts {}/{}",
                    event.fraction * 100.0,
                    keys,
                    *keys as f64 / secs,
                    *bytes as f64 / secs / 1e6,
                    settled,
                    parts
                )
            })
        });
        match output {
            Output::Json => json_line(&PartLine {
                event: "snapshot_part",
                index: event.index,
                name: &event.name,
                bytes: event.bytes,
                status: match event.status {
                    PartStatus::Applied { .. } => "applied",
                    PartStatus::Held => "held",
                    PartStatus::NotNeeded => "not_needed",
                    PartStatus::Failed { .. } => "failed",
                },
                keys: match event.status {
                    PartStatus::Applied { keys } => keys,
                    _ => 0,
                },
                reason,
                percent: event.fraction * 100.0,
            }),
            Output::Text => {
                if let Some(reason) = reason {
                    eprintln!(
                        "snapshot part {} ({}) not used: {reason}; its range comes from peers",
                        event.index, event.name
                    );
                }
                if let Some(line) = line {
                    eprintln!("{line}");
                }
            }
        }
    })
}

/// With `--follow`, a snapshot's root is trusted as far as the peers are: when one of them
/// proves (with a verified range proof at that root) that it holds it.
async fn held_by_a_peer(
    client: &Arc<dyn SyncClient>,
    root: Hash,
    bf: arbor_merkledb::BranchFactor,
    timeout: Duration,
) -> Result<Hash, String> {
    let members = client.peers().members();
    for peer in members.keys() {
        let request = arbor_sync::RangeProofRequest {
            root,
            start: None,
            end: None,
            key_limit: 1,
            bytes_limit: 1 << 20,
        };
        let answer = tokio::time::timeout(timeout, client.range_proof(*peer, request)).await;
        if let Ok(Ok(answer)) = answer {
            if arbor_merkledb::verify_range_proof(&answer.answer, None, None, root, 1, bf).is_ok() {
                return Ok(root);
            }
        }
    }
    Err(format!(
        "no peer holds the snapshot's root {root} (give --snapshot-root to trust it)"
    ))
}

fn json_line(line: &impl Serialize) {
    let mut out = std::io::stdout();
    if let Ok(text) = serde_json::to_string(line) {
        let _ = writeln!(out, "{text}");
    }
    let _ = out.flush();
}

#[derive(Serialize)]
struct SnapshotRefused<'a> {
    event: &'static str,
    url: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct PartLine<'a> {
    event: &'static str,
    index: usize,
    name: &'a str,
    bytes: u64,
    status: &'static str,
    keys: u64,
    reason: Option<&'a str>,
    /// Share of the keyspace at the snapshot's root so far.
    percent: f64,
}

#[derive(Serialize)]
struct SnapshotLine<'a> {
    event: &'static str,
    url: &'a str,
    root: String,
    parts: usize,
    applied: usize,
    held: usize,
    not_needed: usize,
    failed: usize,
    defects: &'a [String],
    keys_written: u64,
    bytes: u64,
    seconds: f64,
    percent: f64,
}
