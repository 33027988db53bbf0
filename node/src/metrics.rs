//! Prometheus metrics for `arbor serve` and `arbor sync`: the library's observers
//! ([`ServeObserver`], [`SyncObserver`]) bound to `prometheus-client`, and an HTTP endpoint
//! (axum) answering `GET /metrics` with the text exposition format.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use arbor_sync::{
    Progress, ServeObserver, SyncObserver,
    snapshot::{PartEvent, PartStatus},
};
use axum::{Router, http::StatusCode, http::header, response::IntoResponse, routing::get};
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
use tokio::net::TcpListener;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The RPC, e.g. `GetRangeProof`.
    rpc: String,
    /// The gRPC status code, e.g. `Ok`, `NotFound`.
    status: String,
}

/// Labels of a snapshot part's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabels {
    /// `applied`, `held`, `not_needed` or `failed`.
    status: &'static str,
}

/// Labels of a peer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    /// The peer's name (its URL).
    peer: String,
}

/// What a server counts.
#[derive(Debug, Default)]
pub(crate) struct ServeMetrics {
    requests: Family<RequestLabels, Counter>,
    bytes_served: Counter,
}

impl ServeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
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
}

impl ServeObserver for ServeMetrics {
    fn request(&self, rpc: &'static str, status: tonic::Code, bytes: usize) {
        self.requests
            .get_or_create(&RequestLabels {
                rpc: rpc.to_owned(),
                status: format!("{status:?}"),
            })
            .inc();
        self.bytes_served.inc_by(bytes as u64);
    }
}

/// What a sync reports: counters fed by the manager as events happen, gauges set from a
/// [`Progress`] by [`SyncMetrics::update`].
#[derive(Debug)]
pub(crate) struct SyncMetrics {
    keys: Counter,
    bytes: Counter,
    proofs_verified: Counter,
    proofs_rejected: Counter,
    /// Its `_count` and `_sum` are the number of commits and the time spent in them.
    commit_latency: Histogram,
    fraction: Gauge<f64, AtomicU64>,
    peer_score: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_goodput: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_latency: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_keys: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_in_flight: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_overtaken: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    snapshot_parts: Family<PartLabels, Counter>,
    snapshot_bytes: Counter,
    snapshot_keys: Counter,
    snapshot_fraction: Gauge<f64, AtomicU64>,
    answer_bytes: Family<KindLabels, Gauge<f64, AtomicU64>>,
    diffing: Gauge<f64, AtomicU64>,
}

/// The kind of answer bytes were received in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl SyncMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Arc::new(Self {
            keys: Counter::default(),
            bytes: Counter::default(),
            proofs_verified: Counter::default(),
            proofs_rejected: Counter::default(),
            // 1 ms to ~4 s.
            commit_latency: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
            fraction: Gauge::default(),
            peer_score: Family::default(),
            peer_goodput: Family::default(),
            peer_latency: Family::default(),
            peer_keys: Family::default(),
            peer_in_flight: Family::default(),
            peer_overtaken: Family::default(),
            snapshot_parts: Family::default(),
            snapshot_bytes: Counter::default(),
            snapshot_keys: Counter::default(),
            snapshot_fraction: Gauge::default(),
            answer_bytes: Family::default(),
            diffing: Gauge::default(),
        });
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
            (
                "arbor_sync_snapshot_bytes",
                "Bytes of snapshot parts checked and written",
                &m.snapshot_bytes,
            ),
            (
                "arbor_sync_snapshot_keys",
                "Keys written or deleted from snapshot parts",
                &m.snapshot_keys,
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
        let peer_gauges = [
            (
                "arbor_sync_peer_goodput_bytes_per_second",
                "Bytes of accepted answers per second from the peer",
                &m.peer_goodput,
            ),
            (
                "arbor_sync_peer_latency_seconds",
                "Moving average of the peer's answer latency",
                &m.peer_latency,
            ),
            (
                "arbor_sync_peer_keys",
                "Keys written from the peer's verified answers (its share of the sync)",
                &m.peer_keys,
            ),
            (
                "arbor_sync_peer_in_flight",
                "Requests in flight to the peer",
                &m.peer_in_flight,
            ),
            (
                "arbor_sync_peer_overtaken",
                "Requests of the peer another peer answered first (hedged at the tail; its copy cancelled)",
                &m.peer_overtaken,
            ),
        ];
        for (name, help, gauge) in peer_gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "arbor_sync_snapshot_parts",
            "Snapshot parts by outcome (applied, held, not_needed, failed)",
            m.snapshot_parts.clone(),
        );
        registry.register(
            "arbor_sync_snapshot_keyspace_fraction",
            "Fraction of the keyspace holding the snapshot's root",
            m.snapshot_fraction.clone(),
        );
        registry.register(
            "arbor_sync_answer_bytes",
            "Bytes of accepted answers by kind (range, change, diff)",
            m.answer_bytes.clone(),
        );
        registry.register(
            "arbor_sync_diff_mode",
            "1 while the replica's trie is compared with the target's node by node (its root is in no peer's history), else 0",
            m.diffing.clone(),
        );
        registry.register(
            "arbor_sync_peer_score",
            "Peer score (throughput, penalised for failures and invalid answers)",
            m.peer_score.clone(),
        );
        m
    }

    /// Sets the gauges from `progress`.
    pub(crate) fn update(&self, progress: &Progress) {
        self.fraction.set(progress.fraction);
        for (kind, bytes) in [
            ("range", progress.range_bytes),
            ("change", progress.change_bytes),
            ("diff", progress.diff_bytes),
        ] {
            self.answer_bytes
                .get_or_create(&KindLabels { kind })
                .set(bytes as f64);
        }
        self.diffing.set(f64::from(u8::from(
            progress.mode == arbor_sync::SyncMode::Diff,
        )));
        for peer in &progress.peers {
            let labels = PeerLabels {
                peer: peer.name.clone(),
            };
            self.peer_score.get_or_create(&labels).set(peer.score);
            self.peer_goodput
                .get_or_create(&labels)
                .set(peer.goodput_bytes_per_sec);
            self.peer_latency
                .get_or_create(&labels)
                .set(peer.latency_ms.unwrap_or(0.0) / 1e3);
            self.peer_keys.get_or_create(&labels).set(peer.keys as f64);
            self.peer_in_flight
                .get_or_create(&labels)
                .set(peer.in_flight as f64);
            self.peer_overtaken
                .get_or_create(&labels)
                .set(peer.overtaken as f64);
        }
    }
}

impl SyncMetrics {
    /// Counts a snapshot part's outcome.
    pub(crate) fn snapshot_part(&self, event: &PartEvent) {
        let status = match event.status {
            PartStatus::Applied { keys } => {
                self.snapshot_keys.inc_by(keys);
                self.snapshot_bytes.inc_by(event.bytes);
                "applied"
            }
            PartStatus::Held => "held",
            PartStatus::NotNeeded => "not_needed",
            PartStatus::Failed { .. } => "failed",
        };
        self.snapshot_parts
            .get_or_create(&PartLabels { status })
            .inc();
        self.snapshot_fraction.set(event.fraction);
    }
}

impl SyncObserver for SyncMetrics {
    fn answer(&self, bytes: usize) {
        self.bytes.inc_by(bytes as u64);
    }

    fn rejected(&self) {
        self.proofs_rejected.inc();
    }

    fn committed(&self, took: Duration, answers: u64, keys: u64) {
        self.commit_latency.observe(took.as_secs_f64());
        self.proofs_verified.inc_by(answers);
        self.keys.inc_by(keys);
    }
}

/// Serves `registry` on `listener` at `GET /metrics` until `shutdown` resolves (other paths:
/// 404).
pub(crate) async fn serve_metrics(
    registry: Arc<Registry>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match encode(&mut body, &registry) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            body,
                        )
                            .into_response(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "try GET /metrics\n") });
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(%error, "metrics endpoint failed");
    }
}
