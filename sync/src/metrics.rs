//! Prometheus metrics for servers and syncs, and a minimal HTTP endpoint serving them.
//!
//! The endpoint answers `GET /metrics` with the text exposition format and anything else with
//! 404; it reads at most 8 KiB of request and gives a client 5 s, so a misbehaving scraper
//! cannot hold resources.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::manager::Progress;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The RPC, e.g. `GetRangeProof`.
    pub rpc: String,
    /// The gRPC status code, e.g. `Ok`, `NotFound`.
    pub status: String,
}

/// Labels of a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's name (its URL).
    pub peer: String,
}

/// What a server counts.
#[derive(Debug, Default)]
pub struct ServeMetrics {
    requests: Family<RequestLabels, Counter>,
    bytes_served: Counter,
}

impl ServeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let metrics = Arc::new(Self::default());
        registry.register(
            "arbor_requests",
            "StateSync requests by RPC and status code",
            metrics.requests.clone(),
        );
        registry.register(
            "arbor_served_bytes",
            "Bytes of successful proof answers",
            metrics.bytes_served.clone(),
        );
        metrics
    }

    /// Records one answered request.
    pub fn observe(&self, rpc: &str, status: tonic::Code, bytes: usize) {
        self.requests
            .get_or_create(&RequestLabels {
                rpc: rpc.to_owned(),
                status: format!("{status:?}"),
            })
            .inc();
        self.bytes_served.inc_by(bytes as u64);
    }
}

/// What a sync reports. The manager counts events as they happen (when
/// [`SyncConfig::metrics`](crate::SyncConfig::metrics) is set, so counts add up across the
/// managers of a follow-mode sync); [`SyncMetrics::update`] sets the gauges from a [`Progress`].
#[derive(Debug)]
pub struct SyncMetrics {
    keys: Counter,
    bytes: Counter,
    proofs_verified: Counter,
    proofs_rejected: Counter,
    /// Its `_count` and `_sum` are the number of commits and the time spent in them.
    commit_latency: Histogram,
    fraction: Gauge<f64, AtomicU64>,
    peer_score: Family<PeerLabels, Gauge<f64, AtomicU64>>,
}

impl Default for SyncMetrics {
    fn default() -> Self {
        Self {
            keys: Counter::default(),
            bytes: Counter::default(),
            proofs_verified: Counter::default(),
            proofs_rejected: Counter::default(),
            // 1 ms to ~4 s.
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
            fraction: Gauge::default(),
            peer_score: Family::default(),
        }
    }
}

impl SyncMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Arc::new(Self::default());
        let counters = [
            (
                "arbor_sync_keys",
                "Keys written or deleted by the sync",
                &m.keys,
            ),
            ("arbor_sync_bytes", "Bytes of answers received", &m.bytes),
            (
                "arbor_sync_proofs_verified",
                "Answers verified and committed",
                &m.proofs_verified,
            ),
            (
                "arbor_sync_proofs_rejected",
                "Answers rejected (undecodable or failing verification)",
                &m.proofs_rejected,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "arbor_sync_commit_latency_seconds",
            "Latency of each commit of verified answers",
            m.commit_latency.clone(),
        );
        registry.register(
            "arbor_sync_keyspace_fraction",
            "Fraction of the keyspace holding the target root",
            m.fraction.clone(),
        );
        registry.register(
            "arbor_sync_peer_score",
            "Peer score (throughput, penalised for failures and invalid answers)",
            m.peer_score.clone(),
        );
        m
    }

    /// An answer of `bytes` arrived.
    pub fn observe_answer(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
    }

    /// An answer was rejected.
    pub fn observe_rejected(&self) {
        self.proofs_rejected.inc();
    }

    /// A commit of `answers` verified answers writing `keys` keys took `took`.
    pub fn observe_commit(&self, took: std::time::Duration, answers: u64, keys: u64) {
        self.commit_latency.observe(took.as_secs_f64());
        self.proofs_verified.inc_by(answers);
        self.keys.inc_by(keys);
    }

    /// Sets the gauges from `progress`.
    pub fn update(&self, progress: &Progress) {
        self.fraction.set(progress.fraction);
        for peer in &progress.peers {
            self.peer_score
                .get_or_create(&PeerLabels {
                    peer: peer.name.clone(),
                })
                .set(peer.score);
        }
    }
}

/// Serves `registry` on `listener` at `GET /metrics` until `shutdown` resolves.
pub async fn serve_metrics(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let answer = tokio::time::timeout(Duration::from_secs(5), async {
                let mut request = Vec::with_capacity(1024);
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let wanted = request.starts_with(b"GET /metrics ")
                    || request.starts_with(b"GET /metrics?");
                let (status, body) = if wanted {
                    let mut body = String::new();
                    match encode(&mut body, &registry) {
                        Ok(()) => ("200 OK", body),
                        Err(_) => ("500 Internal Server Error", String::new()),
                    }
                } else {
                    ("404 Not Found", "try GET /metrics\n".to_owned())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
            if let Ok(Err(error)) = answer {
                tracing::debug!(%error, "metrics request failed");
            }
        });
    }
}
