//! Buffer ownership: every buffer the library hands out is freed by its caller. The count is
//! process-wide, so this test is alone in its binary.
#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "every call passes pointers to live locals"
)]

mod common;

use arbor_ffi::{
    abi::{ArborStatus, arbor_live_buffers},
    db::*,
};
use common::*;

#[test]
fn commits_match_the_reference_root_and_every_buffer_is_freed() {
    let before = arbor_live_buffers();
    let db = open_memory();
    let root = commit(db, &put(b"key", b"value"));
    // Reference §2.6 e: one key "key" → "value", branch factor 16.
    assert_eq!(
        arbor_merkledb::Hash(root.bytes).to_hex(),
        "70efedfc5db7ea66f5b49ea566719633181d095fed089cce52224e11f889463a"
    );
    let (mut value, mut found, mut err) = (EMPTY, false, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe {
            arbor_db_get(
                db,
                lend(b"key"),
                &raw mut value,
                &raw mut found,
                &raw mut err,
            )
        },
        err,
    );
    assert!(found);
    assert_eq!(take(value), b"value");
    let (mut proof, mut err) = (EMPTY, EMPTY);
    // SAFETY: valid arguments.
    check(
        unsafe {
            arbor_db_range_proof(
                db,
                root,
                NONE,
                NONE,
                10,
                1 << 20,
                &raw mut proof,
                &raw mut err,
            )
        },
        err,
    );
    let proof = take(proof);
    let mut err = EMPTY;
    // SAFETY: valid arguments.
    check(
        unsafe { arbor_verify_range_proof(lend(&proof), root, NONE, NONE, 10, 16, &raw mut err) },
        err,
    );
    let mut tampered = proof.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let mut err = EMPTY;
    // SAFETY: valid arguments.
    let status = unsafe {
        arbor_verify_range_proof(lend(&tampered), root, NONE, NONE, 10, 16, &raw mut err)
    };
    assert_ne!(status, ArborStatus::Ok);
    assert!(!take(err).is_empty(), "a rejection says why");
    let mut err = EMPTY;
    // SAFETY: valid arguments.
    check(unsafe { arbor_db_close(db, &raw mut err) }, err);
    assert_eq!(
        arbor_live_buffers(),
        before,
        "every buffer handed out was freed"
    );
}
