//! # arbor-linkemu
//!
//! A TCP proxy that behaves like a network link, for tests and benchmarks on a machine whose
//! kernel has no `netem`: each direction of every connection is delayed by a one-way latency,
//! paced to a bandwidth through a bottleneck queue of bounded size, and every connection can be
//! cut at once. One [`Link`] per peer, so a test can hold a fast near peer and a slow far one.
//!
//! The model, per direction: bytes read from the sender join the bottleneck queue; the queue
//! drains at `bandwidth` (serialisation); a chunk that has left the queue arrives
//! `one_way_latency` later (propagation). When the queue holds more than `queue_bytes`, the
//! proxy stops reading from the sender, so TCP's flow control pushes back on it, as a full
//! router queue would (without the drops). With no bandwidth cap, chunks only pay the latency.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use arbor_linkemu::{Link, LinkConfig};
//! let server: std::net::SocketAddr = "127.0.0.1:7000".parse().unwrap();
//! let far = LinkConfig {
//!     one_way_latency: Duration::from_millis(50),
//!     bandwidth_bytes_per_sec: Some(10_000_000 / 8),
//!     ..LinkConfig::default()
//! };
//! let link = Link::start("127.0.0.1:0".parse().unwrap(), server, far).await?;
//! println!("dial {} to reach the server 100 ms away at 10 Mbit/s", link.addr());
//! # Ok(()) }
//! ```

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Largest chunk read at once from a sender.
const CHUNK: usize = 16 << 10;

/// How one link behaves (both directions alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Delay of every byte in each direction (half the round trip).
    pub one_way_latency: Duration,
    /// Bytes per second each direction carries; `None` = unlimited.
    pub bandwidth_bytes_per_sec: Option<u64>,
    /// Most bytes waiting in the bottleneck queue of a direction before the proxy stops reading
    /// from the sender (only with a bandwidth cap).
    pub queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            one_way_latency: Duration::ZERO,
            bandwidth_bytes_per_sec: None,
            queue_bytes: 256 << 10,
        }
    }
}

/// A running link: a listening address that forwards every connection to the upstream address
/// through the emulated link. Dropping it stops accepting and cuts every connection.
#[derive(Debug)]
pub struct Link {
    addr: SocketAddr,
    /// Cancelled to cut the current connections; replaced by a fresh token for the next ones.
    cut: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Link {
    /// Listens on `listen` (port 0 picks one) and forwards to `upstream` through a link with
    /// `config`.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            config,
            cut.clone(),
            stop.clone(),
        ));
        Ok(Self { addr, cut, stop })
    }

    /// The address to dial instead of the upstream one.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection (both sides see the connection drop); later connections work.
    pub fn cut(&self) {
        if let Ok(mut cut) = self.cut.lock() {
            cut.cancel();
            *cut = CancellationToken::new();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    config: LinkConfig,
    cut: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(token) = cut.lock().map(|c| c.clone()) else {
            return;
        };
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return; // Dropping the client closes it, as an unreachable host would.
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = direction(client_read, server_write, config);
            let down = direction(server_read, client_write, config);
            tokio::select! {
                () = token.cancelled() => {}
                _ = async { tokio::join!(up, down) } => {}
            }
        });
    }
}

/// One direction of a connection: read, queue, pace, delay, write.
async fn direction(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, config: LinkConfig) {
    // The delay line: chunks with the time they arrive (`None`: the sender closed).
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let reader = async move {
        let mut queue = Pacer::new(config);
        let mut buf = vec![0; CHUNK];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let now = Instant::now();
            if n == 0 {
                let _ = tx.send((queue.drained_at(now) + config.one_way_latency, None));
                return;
            }
            let departs = queue.enqueue(now, n);
            let _ = tx.send((departs + config.one_way_latency, Some(buf[..n].to_vec())));
            // A full bottleneck queue: stop reading until it drains below its bound.
            if let Some(resume) = queue.full_until(now) {
                tokio::time::sleep_until(resume).await;
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// The bottleneck queue of one direction: when each chunk finishes serialisation.
struct Pacer {
    config: LinkConfig,
    /// When the queue is empty again (the last chunk has left).
    free_at: Option<Instant>,
    /// Departure times and sizes of chunks still queued, oldest first.
    queued: VecDeque<(Instant, usize)>,
}

impl Pacer {
    fn new(config: LinkConfig) -> Self {
        Self {
            config,
            free_at: None,
            queued: VecDeque::new(),
        }
    }

    /// Queues `bytes` at `now`; returns when they have left the queue.
    fn enqueue(&mut self, now: Instant, bytes: usize) -> Instant {
        let Some(rate) = self.config.bandwidth_bytes_per_sec else {
            return now;
        };
        let start = self.free_at.filter(|t| *t > now).unwrap_or(now);
        let departs = start + Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        self.free_at = Some(departs);
        self.queued.push_back((departs, bytes));
        departs
    }

    /// When everything queued by `now` has left.
    fn drained_at(&self, now: Instant) -> Instant {
        self.free_at.filter(|t| *t > now).unwrap_or(now)
    }

    /// If the queue holds more than its bound at `now`, when it will be back under it.
    fn full_until(&mut self, now: Instant) -> Option<Instant> {
        while self.queued.front().is_some_and(|(t, _)| *t <= now) {
            self.queued.pop_front();
        }
        let mut waiting: usize = self.queued.iter().map(|(_, b)| b).sum();
        if waiting <= self.config.queue_bytes {
            return None;
        }
        for (departs, bytes) in &self.queued {
            waiting -= bytes;
            if waiting <= self.config.queue_bytes {
                return Some(*departs);
            }
        }
        self.queued.back().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests;
