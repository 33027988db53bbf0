//! `arbor serve`: the StateSync gRPC server over a database, with optional churn.

use std::{io::Write, net::SocketAddr, path::Path, time::Duration};

use anyhow::Context;
use arbor_merkledb::{Config, Db, test_utils::SeededRng};
use arbor_sync::{RootAnnouncer, ServerConfig, StateSyncService, tls::ServerTls};
use tokio_util::sync::CancellationToken;

use crate::metrics::{ServeMetrics, serve_metrics};

/// The PEM files of `serve --tls-cert/--tls-key [--client-ca]`.
pub(crate) struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// With it, only clients holding a certificate signed by this CA are served.
    pub client_ca: Option<std::path::PathBuf>,
}

/// Rereads the certificate and key on SIGHUP, and when their files change (checked every
/// second), until `stop`. A reload that fails keeps the current certificate.
async fn reload_on_change(tls: std::sync::Arc<ServerTls>, stop: CancellationToken) {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let hangup = async {
            match hangups.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let asked = tokio::select! {
            () = stop.cancelled() => return,
            _ = hangup => true,
            _ = tick.tick() => false,
        };
        if asked || tls.files_changed() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(error) => {
                    tracing::warn!(%error, "TLS certificate not reloaded; keeping the current one")
                }
            }
        }
    }
}

/// Random commits on a timer, a stand-in for a chain producing blocks.
pub(crate) struct Churn {
    /// Operations per commit.
    pub keys: usize,
    /// Time between commits.
    pub every: Duration,
    /// Stop after this many commits.
    pub commits: Option<u64>,
}

/// Settings of `arbor serve`.
pub(crate) struct Options {
    pub listen: SocketAddr,
    /// Commits of history kept.
    pub history: usize,
    pub churn: Option<Churn>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    pub memory_mb: Option<u64>,
    pub tls: Option<TlsFiles>,
    /// Snapshots to publish, if any.
    pub publisher: Option<crate::snapshot::Publisher>,
}

pub(crate) fn run(path: &Path, options: Options) -> anyhow::Result<()> {
    let Options {
        listen,
        history,
        churn,
        metrics,
        memory_mb,
        tls,
        publisher,
    } = options;
    let tls = tls
        .map(|files| ServerTls::load(&files.cert, &files.key, files.client_ca.clone()))
        .transpose()
        .context("loading the TLS certificate")?;
    let mut config = Config::default().with_history_len(history);
    if let Some(mb) = memory_mb {
        config = config.with_memory_budget(usize::try_from(mb)? << 20);
    }
    let db =
        Db::open(path, config).with_context(|| format!("opening database {}", path.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let (listener, addr) = arbor_sync::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let mut service = StateSyncService::new(db.clone(), ServerConfig::default());
        let metrics_listener = match metrics {
            Some(addr) => {
                let mut registry = prometheus_client::registry::Registry::default();
                service = service.with_observer(ServeMetrics::register(&mut registry));
                let (listener, addr) = arbor_sync::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics endpoint {addr}"))?;
                Some((listener, addr, std::sync::Arc::new(registry)))
            }
            None => None,
        };
        // Announced on stdout so scripts and tests can find an ephemeral port. A closed stdout
        // must not take the server down, so write errors are ignored.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on {addr}");
        let _ = writeln!(out, "root {}", db.root()?);
        if let Some((_, addr, _)) = &metrics_listener {
            let _ = writeln!(out, "metrics on http://{addr}/metrics");
        }
        let _ = out.flush();
        let stop = CancellationToken::new();
        let poller = tokio::spawn(service.clone().poll_roots(stop.clone().cancelled_owned()));
        let churner = churn.map(|churn| {
            let (db, announcer, stop) = (db.clone(), service.announcer(), stop.clone());
            tokio::spawn(async move { churn_loop(db, announcer, churn, stop).await })
        });
        let publishing = publisher.map(|p| tokio::spawn(p.run(db.clone(), stop.clone())));
        if let Some((listener, _, registry)) = metrics_listener {
            tokio::spawn(serve_metrics(
                registry,
                listener,
                stop.clone().cancelled_owned(),
            ));
        }
        let server = match &tls {
            Some(tls) => {
                tokio::spawn(reload_on_change(tls.clone(), stop.clone()));
                let (tls, stopped) = (tls.clone(), stop.clone().cancelled_owned());
                tokio::spawn(async move {
                    arbor_sync::tls::serve_tls(service, listener, &tls, stopped)
                        .await
                        .map_err(|e| anyhow::anyhow!(e))
                })
            }
            None => {
                let stopped = stop.clone().cancelled_owned();
                tokio::spawn(async move {
                    arbor_sync::serve(service, listener, stopped)
                        .await
                        .map_err(anyhow::Error::from)
                })
            }
        };
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        stop.cancel();
        server.await.context("server task")?.context("serving")?;
        poller.await.context("poller task")?;
        if let Some(publishing) = publishing {
            publishing.await.context("publisher task")?;
        }
        if let Some(churner) = churner {
            churner.await.context("churn task")??;
        }
        anyhow::Ok(())
    })?;
    db.close()?;
    Ok(())
}

async fn churn_loop(
    db: Db,
    announcer: RootAnnouncer,
    churn: Churn,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut rng = SeededRng::new(db.commit_seq()?.wrapping_add(0xc4a2));
    let mut done = 0u64;
    let mut ticker = tokio::time::interval(churn.every);
    ticker.tick().await;
    while churn.commits.is_none_or(|max| done < max) {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let view = db.view()?;
        let mut ops = Vec::with_capacity(churn.keys);
        for _ in 0..churn.keys {
            match rng.below(10) {
                // Update or delete the first key at or after a random point.
                0..=2 => {
                    let at = rng.bytes(32);
                    if let Some((key, _)) = view.range(&at, None, 1)?.into_iter().next() {
                        let value = (rng.below(2) == 0).then(|| rng.bytes(32));
                        ops.push((key, value));
                    }
                }
                _ => ops.push((rng.bytes(32), Some(rng.bytes(32)))),
            }
        }
        let db2 = db.clone();
        let (root, seq) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            db2.propose(ops)?.commit()?;
            Ok((db2.root()?, db2.commit_seq()?))
        })
        .await??;
        announcer.announce(root, seq);
        tracing::info!(%root, seq, "churn commit");
        done += 1;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
