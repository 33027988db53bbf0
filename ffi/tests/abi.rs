//! The ABI's rules, called as C would call them: handles after close and under concurrent use,
//! proofs and a caller-driven sync (buffer ownership: `buffers.rs`).
//!
//! Every `unsafe` call here passes pointers to live locals and slices, as the ABI requires.
#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "see the module docs: one reason for every call"
)]

mod common;

use std::{thread, time::Duration};

use arbor_ffi::{
    abi::{ArborBytes, ArborHash, ArborStatus},
    db::*,
    sync::*,
};
use common::*;

#[test]
fn a_handle_after_close_is_an_error() {
    let db = open_memory();
    let mut err = EMPTY;
    // SAFETY: valid arguments.
    check(unsafe { arbor_db_close(db, &raw mut err) }, err);
    let (mut root, mut err) = (ArborHash { bytes: [0; 32] }, EMPTY);
    // SAFETY: valid arguments; the handle is closed, which is what is tested.
    let status = unsafe { arbor_db_root(db, &raw mut root, &raw mut err) };
    assert_eq!(status, ArborStatus::InvalidHandle);
    assert!(String::from_utf8_lossy(&take(err)).contains("not open"));
    let mut err = EMPTY;
    // SAFETY: as above.
    assert_eq!(
        unsafe { arbor_db_close(db, &raw mut err) },
        ArborStatus::InvalidHandle
    );
    take(err);
    let mut err = EMPTY;
    // SAFETY: as above; 0 is never a handle.
    assert_eq!(
        unsafe { arbor_db_close(0, &raw mut err) },
        ArborStatus::InvalidHandle
    );
    take(err);
}

#[test]
fn a_handle_used_by_two_threads_at_once_is_busy_for_one() {
    let db = open_memory();
    let target = commit(db, &put(b"k", b"v"));
    let replica = open_memory();
    let (mut sync, mut err) = (0, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_sync_start(replica, target, 0, 0, &raw mut sync, &raw mut err) },
        err,
    );
    // One thread waits in a poll (no peers, so nothing to send) while another uses the handle.
    let poller = thread::spawn(move || {
        let (mut requests, mut state, mut err) = (EMPTY, ArborSyncState::Running, EMPTY);
        // SAFETY: valid arguments.
        let status =
            unsafe { arbor_sync_poll(sync, 1000, &raw mut requests, &raw mut state, &raw mut err) };
        take(requests);
        take(err);
        status
    });
    thread::sleep(Duration::from_millis(200));
    let (mut fraction, mut keys, mut err) = (0.0, 0, EMPTY);
    // SAFETY: valid arguments.
    let status =
        unsafe { arbor_sync_progress(sync, &raw mut fraction, &raw mut keys, &raw mut err) };
    assert_eq!(status, ArborStatus::Busy);
    take(err);
    assert_eq!(poller.join().expect("poller"), ArborStatus::Ok);
    let mut err = EMPTY;
    check(unsafe { arbor_sync_close(sync, &raw mut err) }, err);
    for handle in [db, replica] {
        let mut err = EMPTY;
        // SAFETY: valid arguments.
        check(unsafe { arbor_db_close(handle, &raw mut err) }, err);
    }
}

#[test]
fn a_sync_driven_by_the_caller_reaches_the_target() {
    let server = open_memory();
    let mut batch = Vec::new();
    for i in 0u32..5000 {
        batch.extend(put(&i.to_be_bytes(), &i.to_le_bytes().repeat(3)));
    }
    let target = commit(server, &batch);
    let replica = open_memory();
    let (mut sync, mut err) = (0, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_sync_start(replica, target, 500, 4, &raw mut sync, &raw mut err) },
        err,
    );
    let (mut peer, mut err) = (0, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_sync_join(sync, lend(b"server"), &raw mut peer, &raw mut err) },
        err,
    );
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10_000, "the sync ends");
        let (mut requests, mut state, mut err) = (EMPTY, ArborSyncState::Running, EMPTY);
        // SAFETY: valid arguments.
        check(
            unsafe { arbor_sync_poll(sync, 50, &raw mut requests, &raw mut state, &raw mut err) },
            err,
        );
        let requests = take(requests);
        let mut rest = requests.as_slice();
        while !rest.is_empty() {
            let id = u64::from_le_bytes(rest[..8].try_into().expect("8"));
            assert_eq!(u64::from_le_bytes(rest[8..16].try_into().expect("8")), peer);
            let len = u32::from_le_bytes(rest[16..20].try_into().expect("4")) as usize;
            let request = &rest[20..20 + len];
            rest = &rest[20 + len..];
            let (mut answer, mut refusal, mut err) = (EMPTY, 0u32, EMPTY);
            // SAFETY: valid arguments.
            check(
                unsafe {
                    arbor_db_handle_request(
                        server,
                        lend(request),
                        &raw mut answer,
                        &raw mut refusal,
                        &raw mut err,
                    )
                },
                err,
            );
            let answer = take(answer);
            let mut err = EMPTY;
            // SAFETY: valid arguments.
            check(
                unsafe { arbor_sync_deliver(sync, id, lend(&answer), 0, &raw mut err) },
                err,
            );
        }
        if state == ArborSyncState::Done {
            break;
        }
    }
    let (mut root, mut err) = (ArborHash { bytes: [0; 32] }, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_db_root(replica, &raw mut root, &raw mut err) },
        err,
    );
    assert_eq!(root, target);
    for (close, handle) in [
        (
            arbor_sync_close as unsafe extern "C" fn(u64, *mut ArborBytes) -> ArborStatus,
            sync,
        ),
        (arbor_db_close, server),
        (arbor_db_close, replica),
    ] {
        let mut err = EMPTY;
        // SAFETY: valid arguments.
        check(unsafe { close(handle, &raw mut err) }, err);
    }
}
