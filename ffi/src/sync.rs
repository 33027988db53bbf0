//! Syncs driven by the caller's network: the library decides what to ask of whom; the caller
//! carries the requests and hands back the answers.
//!
//! The loop on the caller's side, from one thread:
//! 1. `arbor_sync_start` on an open database, with the target root;
//! 2. `arbor_sync_join` for each connected peer (and `arbor_sync_leave` when one disconnects, at
//!    any time);
//! 3. `arbor_sync_poll`: the requests to send now (request id, peer, bytes) and the state;
//! 4. for each request, send the bytes to the peer; when the answer (or a refusal, or a
//!    failure) comes back, `arbor_sync_deliver` it under the request's id;
//! 5. repeat from 3 until the state is `ARBOR_SYNC_STATE_DONE` (the local root equals the
//!    target) or a poll fails (the message says why); then `arbor_sync_close`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arbor_sync::{
    ClientError, Network, NetworkClient, PeerId, PeerSet, Progress, StatusKind, SyncConfig,
    SyncHandle, SyncManager,
};
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::{oneshot, watch};

use crate::{
    abi::{
        ArborBytes, ArborHash, ArborSlice, ArborStatus, FfiError, guard, slice, write, write_bytes,
    },
    db::DBS,
    handles::Registry,
};

/// Where a sync stands, as `arbor_sync_poll` reports it.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArborSyncState {
    /// Still syncing: send the requests, deliver the answers, poll again.
    Running = 0,
    /// Finished: the local root equals the target.
    Done = 1,
}

/// Open syncs.
static SYNCS: LazyLock<Registry<FfiSync>> = LazyLock::new(|| Registry::new("sync"));

/// The runtime every sync runs on (two workers: verification and commits also use its blocking
/// threads).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("arbor-ffi")
        .enable_all()
        .build()
        .expect("a Tokio runtime (threads) for arbor syncs")
});

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the answer to a request goes, and the peer it was sent to.
type Waiter = (PeerId, oneshot::Sender<Result<Vec<u8>, ClientError>>);

/// What the network side of a sync shares with the caller's calls.
#[derive(Default)]
struct Shared {
    /// Requests the caller has not polled yet: (id, peer, bytes).
    outbox: Mutex<VecDeque<(u64, PeerId, Vec<u8>)>>,
    /// Signalled when the outbox gains a request or the sync ends.
    wake: Condvar,
    /// Requests sent and not answered yet, by id.
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    /// How the sync ended, once it has: `Err` holds the reason.
    outcome: Mutex<Option<Result<(), String>>>,
}

impl Shared {
    /// Fails the requests in flight to the peers `which` selects.
    fn fail_pending(&self, which: impl Fn(PeerId) -> bool, why: &str) {
        let mut pending = lock(&self.pending);
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, (peer, _))| which(*peer))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some((_, waiter)) = pending.remove(&id) {
                let _ = waiter.send(Err(ClientError::Transport(why.to_owned())));
            }
        }
    }
}

/// The sync manager's view of the caller's network: a request is queued for the caller to poll.
struct CallerNetwork(Arc<Shared>);

impl Network for CallerNetwork {
    fn request(
        &self,
        peer: PeerId,
        request: Vec<u8>,
    ) -> BoxFuture<'static, Result<Vec<u8>, ClientError>> {
        let shared = &self.0;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        lock(&shared.pending).insert(id, (peer, waiter));
        lock(&shared.outbox).push_back((id, peer, request));
        shared.wake.notify_all();
        async move {
            answer
                .await
                .unwrap_or_else(|_| Err(ClientError::Transport("request dropped".into())))
        }
        .boxed()
    }
}

/// One sync's handle state.
struct FfiSync {
    shared: Arc<Shared>,
    peers: PeerSet,
    control: SyncHandle,
    progress: watch::Receiver<Progress>,
}

/// Starts syncing the database `db` to `target`. `key_limit` and `workers` of 0 take the
/// defaults (2048 keys per request; 8 requests in flight to start with). Writes the sync's
/// handle to `sync_out`. The sync starts with no peers: join them with `arbor_sync_join`.
/// A sync interrupted earlier (the process died, or it was closed) resumes from what it had
/// committed.
///
/// # Safety
/// The ABI's contract on every argument (see the header's preamble).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_start(
    db: u64,
    target: ArborHash,
    key_limit: u32,
    workers: u32,
    sync_out: *mut u64,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let db = DBS.with(db, |db| Ok(db.clone()))?;
            let mut config = SyncConfig::default();
            if key_limit > 0 {
                config.key_limit = key_limit;
            }
            if workers > 0 {
                config.workers = workers as usize;
            }
            let shared = Arc::new(Shared::default());
            let peers = PeerSet::new();
            let client = Arc::new(NetworkClient::new(
                CallerNetwork(shared.clone()),
                peers.clone(),
            ));
            let manager = {
                let _runtime = RUNTIME.enter();
                SyncManager::start(db, client, target.into(), config)
                    .map_err(|e| FfiError::invalid(e.to_string()))?
            };
            let (control, progress) = (manager.handle(), manager.progress());
            let ended = shared.clone();
            RUNTIME.spawn(async move {
                let outcome = manager.wait().await.map(|_| ()).map_err(|e| e.to_string());
                *lock(&ended.outcome) = Some(outcome);
                ended.fail_pending(|_| true, "the sync ended");
                ended.wake.notify_all();
            });
            let sync = FfiSync {
                shared,
                peers,
                control,
                progress,
            };
            write(sync_out, SYNCS.insert(sync))
        })
    }
}

/// Adds a peer named `name` (UTF-8, for messages); writes its id, under which the library will
/// address requests to it, to `peer_out`.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_join(
    sync: u64,
    name: ArborSlice,
    peer_out: *mut u64,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let name = String::from_utf8_lossy(slice(name)?).into_owned();
            let peer = SYNCS.with(sync, |s| Ok(s.peers.join(name)))?;
            write(peer_out, peer as u64)
        })
    }
}

/// Removes a peer: it is asked nothing more, and its requests in flight are given up (their
/// ranges are asked of others; answers delivered for them later are ignored).
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_leave(
    sync: u64,
    peer: u64,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            SYNCS.with(sync, |s| {
                let peer = usize::try_from(peer).map_err(|_| FfiError::invalid("no such peer"))?;
                s.peers.leave(peer);
                s.shared.fail_pending(|p| p == peer, "the peer left");
                Ok(())
            })
        })
    }
}

/// Waits up to `timeout_ms` for requests to send, then writes them to `requests_out` (the
/// caller frees it) and the sync's state to `state_out`. Layout of `requests_out`, per request:
/// its id (u64 little endian), the peer's id (u64 LE), the length of the request (u32 LE) and
/// the request's bytes (a v1.11 `sync.Request`). A sync that failed returns
/// `ARBOR_STATUS_ERROR` with the reason.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_poll(
    sync: u64,
    timeout_ms: u32,
    requests_out: *mut ArborBytes,
    state_out: *mut ArborSyncState,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let (requests, state) = SYNCS.with(sync, |s| poll(&s.shared, timeout_ms))?;
            write(state_out, state)?;
            write_bytes(requests_out, requests)
        })
    }
}

fn poll(shared: &Shared, timeout_ms: u32) -> Result<(Vec<u8>, ArborSyncState), FfiError> {
    let mut outbox = lock(&shared.outbox);
    if outbox.is_empty() && lock(&shared.outcome).is_none() {
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        outbox = shared
            .wake
            .wait_timeout(outbox, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    let mut requests = Vec::new();
    for (id, peer, bytes) in outbox.drain(..) {
        requests.extend_from_slice(&id.to_le_bytes());
        requests.extend_from_slice(&(peer as u64).to_le_bytes());
        let len =
            u32::try_from(bytes.len()).map_err(|_| FfiError::invalid("request over 4 GiB"))?;
        requests.extend_from_slice(&len.to_le_bytes());
        requests.extend_from_slice(&bytes);
    }
    drop(outbox);
    // Requests whose answer nobody waits for any more (timed out) are forgotten.
    lock(&shared.pending).retain(|_, (_, waiter)| !waiter.is_closed());
    match &*lock(&shared.outcome) {
        None => Ok((requests, ArborSyncState::Running)),
        Some(Ok(())) => Ok((requests, ArborSyncState::Done)),
        Some(Err(why)) => Err(FfiError::new(
            ArborStatus::Error,
            format!("the sync failed: {why}"),
        )),
    }
}

/// Hands back what request `request_id` brought: with `refusal` 0, `answer` is the peer's answer;
/// otherwise the peer (or the network) refused or failed, `refusal` is the kind as a gRPC code
/// number (14, unavailable, for a network failure) and `answer` the message (UTF-8). An id
/// that is no longer awaited (timed out, its peer left) is ignored.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_deliver(
    sync: u64,
    request_id: u64,
    answer: ArborSlice,
    refusal: u32,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let answer = slice(answer)?;
            SYNCS.with(sync, |s| {
                let Some((_, waiter)) = lock(&s.shared.pending).remove(&request_id) else {
                    return Ok(());
                };
                let result = if refusal == 0 {
                    Ok(answer.to_vec())
                } else {
                    let message = String::from_utf8_lossy(answer).into_owned();
                    Err(ClientError::refused(
                        StatusKind::from_code(refusal),
                        message,
                    ))
                };
                let _ = waiter.send(result);
                Ok(())
            })
        })
    }
}

/// Moves the target to `root` (a newer root the application trusts); synced ranges are brought
/// to it with change proofs.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_update_target(
    sync: u64,
    root: ArborHash,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            SYNCS.with(sync, |s| {
                s.control.update_target(root.into());
                Ok(())
            })
        })
    }
}

/// Writes the share of the keyspace synced at the current target (0 to 1) to `fraction_out`
/// and the keys written so far to `keys_out`.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_progress(
    sync: u64,
    fraction_out: *mut f64,
    keys_out: *mut u64,
    err: *mut ArborBytes,
) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let (fraction, keys) = SYNCS.with(sync, |s| {
                let p = s.progress.borrow();
                Ok((p.fraction, p.keys))
            })?;
            write(fraction_out, fraction)?;
            write(keys_out, keys)
        })
    }
}

/// Stops the sync (if it is still running) and releases the handle. What was committed stays,
/// with the progress that lets a later sync resume.
///
/// # Safety
/// The ABI's contract on every argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn arbor_sync_close(sync: u64, err: *mut ArborBytes) -> ArborStatus {
    // SAFETY: the caller keeps the ABI's contract on every argument.
    unsafe {
        guard(err, || {
            let sync = SYNCS.remove(sync)?;
            sync.control.cancel();
            sync.shared.fail_pending(|_| true, "the sync was closed");
            Ok(())
        })
    }
}
