// Package arbor embeds Arbor, a Merkle key-value database hash- and wire-compatible with
// AvalancheGo's x/merkledb and x/sync (v1.11), through its C ABI (the static library built from
// ../ffi; see the README for the link flags).
//
// A DB is a trie on RocksDB (or in memory): commit batches atomically, read values and the root,
// produce range and change proofs as v1.11 protobuf bytes and verify them, and answer sync
// requests from peers with HandleRequest. A Sync brings a DB to a trusted root over a network
// the application owns (see Network).
//
// Every method is safe for concurrent use: each handle is used by one call at a time. A DB or
// Sync used after Close returns an error whose Status is StatusInvalidHandle.
package arbor

/*
#cgo CFLAGS: -I${SRCDIR}/../ffi/include
#cgo LDFLAGS: -larbor_ffi -lstdc++ -lm -ldl -lpthread
#include "arbor.h"
*/
import "C"

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Status is the outcome of a call into the library.
type Status int32

// The statuses the library returns (ArborStatus in arbor.h).
const (
	StatusOK              Status = C.ARBOR_STATUS_OK
	StatusError           Status = C.ARBOR_STATUS_ERROR
	StatusInvalidHandle   Status = C.ARBOR_STATUS_INVALID_HANDLE
	StatusBusy            Status = C.ARBOR_STATUS_BUSY
	StatusInvalidArgument Status = C.ARBOR_STATUS_INVALID_ARGUMENT
	StatusInvalidProof    Status = C.ARBOR_STATUS_INVALID_PROOF
	StatusRefused         Status = C.ARBOR_STATUS_REFUSED
	StatusPanic           Status = C.ARBOR_STATUS_PANIC
)

// Error is a failure the library reported: its status and message. For StatusRefused (a request
// the server side cannot answer), Refusal is the kind as a gRPC code number, to send back to the
// asker with the message.
type Error struct {
	Status  Status
	Message string
	Refusal uint32
}

func (e *Error) Error() string { return fmt.Sprintf("arbor (status %d): %s", e.Status, e.Message) }

// Hash is a root hash. The zero Hash is the empty trie's root.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

func (h Hash) c() C.ArborHash {
	var out C.ArborHash
	for i, b := range h {
		out.bytes[i] = C.uint8_t(b)
	}
	return out
}

func hashOf(h C.ArborHash) Hash {
	var out Hash
	for i := range out {
		out[i] = byte(h.bytes[i])
	}
	return out
}

// lend passes b to C for one call, pinned so the collector neither moves nor frees it.
func lend(p *runtime.Pinner, b []byte) C.ArborSlice {
	if len(b) == 0 {
		return C.ArborSlice{}
	}
	p.Pin(&b[0])
	return C.ArborSlice{ptr: (*C.uint8_t)(unsafe.Pointer(&b[0])), len: C.size_t(len(b))}
}

// lendBound passes an optional bound: nil is absent (unbounded), anything else present.
func lendBound(p *runtime.Pinner, b []byte) C.ArborMaybeSlice {
	if b == nil {
		return C.ArborMaybeSlice{}
	}
	s := lend(p, b)
	return C.ArborMaybeSlice{ptr: s.ptr, len: s.len, present: true}
}

// take copies a buffer the library handed out into Go memory and frees it: every ArborBytes
// goes through here exactly once.
func take(b C.ArborBytes) []byte {
	if b.ptr == nil {
		return nil
	}
	out := C.GoBytes(unsafe.Pointer(b.ptr), C.int(b.len))
	C.arbor_bytes_free(b)
	return out
}

// check turns a status and its message into an error (freeing the message).
func check(status C.ArborStatus, err C.ArborBytes) error {
	message := string(take(err))
	if Status(status) == StatusOK {
		return nil
	}
	return &Error{Status: Status(status), Message: message}
}

// liveBuffers is how many buffers the library handed out that were not freed yet.
func liveBuffers() int64 { return int64(C.arbor_live_buffers()) }

// Options configure Open.
type Options struct {
	// BranchFactor is 2, 4, 16 or 256 children per node; 0 means 16.
	BranchFactor int
	// History is how many commits are kept for change proofs; 0 means none.
	History int
}

// DB is an open database.
type DB struct {
	mu           sync.Mutex
	handle       C.uint64_t
	branchFactor int
}

// Open opens (creating if needed) the database at path on RocksDB, or an in-memory one when
// path is empty.
func Open(path string, opts Options) (*DB, error) {
	bf := opts.BranchFactor
	if bf == 0 {
		bf = 16
	}
	if opts.History < 0 || bf < 0 {
		return nil, &Error{Status: StatusInvalidArgument, Message: "negative option"}
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	var handle C.uint64_t
	var err C.ArborBytes
	status := C.arbor_db_open(lend(&pin, []byte(path)), C.uint32_t(bf), C.uint32_t(opts.History), &handle, &err)
	if e := check(status, err); e != nil {
		return nil, e
	}
	return &DB{handle: handle, branchFactor: bf}, nil
}

// call runs one library call on the handle, one at a time.
func (db *DB) call(f func(handle C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	var pin runtime.Pinner
	defer pin.Unpin()
	var err C.ArborBytes
	status := f(db.handle, &pin, &err)
	return check(status, err)
}

// Close writes what is buffered and closes the database. Later calls fail with
// StatusInvalidHandle.
func (db *DB) Close() error {
	return db.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_close(h, err)
	})
}

// Get returns the value of key and whether it exists.
func (db *DB) Get(key []byte) ([]byte, bool, error) {
	var value C.ArborBytes
	var found C.bool
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_get(h, lend(pin, key), &value, &found, err)
	})
	out := take(value)
	if e != nil {
		return nil, false, e
	}
	if found && out == nil {
		out = []byte{}
	}
	return out, bool(found), nil
}

// Batch collects puts and deletes for one atomic commit; a later operation on a key wins.
type Batch struct{ buf []byte }

func (b *Batch) op(kind byte, key []byte) {
	b.buf = append(b.buf, kind)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(key)))
	b.buf = append(b.buf, key...)
}

// Put sets key to value (an empty value is a value, not a delete).
func (b *Batch) Put(key, value []byte) {
	b.op(0, key)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(value)))
	b.buf = append(b.buf, value...)
}

// Delete removes key.
func (b *Batch) Delete(key []byte) { b.op(1, key) }

// Commit applies the batch atomically and returns the new root.
func (db *DB) Commit(b *Batch) (Hash, error) {
	var root C.ArborHash
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_commit(h, lend(pin, b.buf), &root, err)
	})
	return hashOf(root), e
}

// Root returns the current root.
func (db *DB) Root() (Hash, error) {
	var root C.ArborHash
	e := db.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_root(h, &root, err)
	})
	return hashOf(root), e
}

// RangeProof proves the keys in [start, end] (nil: unbounded) at root, at most keyLimit keys
// and under bytesLimit bytes: a v1.11 sync.RangeProof.
func (db *DB) RangeProof(root Hash, start, end []byte, keyLimit, bytesLimit uint32) ([]byte, error) {
	var out C.ArborBytes
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_range_proof(h, root.c(), lendBound(pin, start), lendBound(pin, end),
			C.uint32_t(keyLimit), C.uint32_t(bytesLimit), &out, err)
	})
	return take(out), e
}

// ChangeProof proves what changed in [start, end] from startRoot to endRoot: a v1.11
// sync.SyncGetChangeProofResponse (a range proof of endRoot when startRoot is no longer held).
func (db *DB) ChangeProof(startRoot, endRoot Hash, start, end []byte, keyLimit, bytesLimit uint32) ([]byte, error) {
	var out C.ArborBytes
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_change_proof(h, startRoot.c(), endRoot.c(), lendBound(pin, start), lendBound(pin, end),
			C.uint32_t(keyLimit), C.uint32_t(bytesLimit), &out, err)
	})
	return take(out), e
}

// VerifyChangeProof checks a change-proof answer (as ChangeProof returns it) of [start, end]
// towards endRoot against this database, which must be at the request's start root.
func (db *DB) VerifyChangeProof(answer, start, end []byte, endRoot Hash, keyLimit uint32) error {
	return db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_verify_change_proof(h, lend(pin, answer), lendBound(pin, start), lendBound(pin, end),
			endRoot.c(), C.uint32_t(keyLimit), err)
	})
}

// ApplyRangeProof verifies a range proof of [start, end] against root and commits it: the
// database's keys in that range become exactly the proof's. It returns the new root; nothing is
// written when verification fails.
func (db *DB) ApplyRangeProof(proof []byte, root Hash, start, end []byte, keyLimit uint32) (Hash, error) {
	var out C.ArborHash
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_apply_range_proof(h, lend(pin, proof), root.c(), lendBound(pin, start), lendBound(pin, end),
			C.uint32_t(keyLimit), &out, err)
	})
	return hashOf(out), e
}

// ApplyChangeProof verifies a change-proof answer of [start, end] towards endRoot against this
// database (at the request's start root) and commits it; it returns the new root. Nothing is
// written when verification fails.
func (db *DB) ApplyChangeProof(answer, start, end []byte, endRoot Hash, keyLimit uint32) (Hash, error) {
	var out C.ArborHash
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_apply_change_proof(h, lend(pin, answer), lendBound(pin, start), lendBound(pin, end),
			endRoot.c(), C.uint32_t(keyLimit), &out, err)
	})
	return hashOf(out), e
}

// HandleRequest answers a peer's v1.11 sync.Request bytes with the answer's bytes. A request it
// cannot answer is an *Error with StatusRefused and the Refusal code to send back.
func (db *DB) HandleRequest(request []byte) ([]byte, error) {
	var out C.ArborBytes
	var refusal C.uint32_t
	e := db.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_db_handle_request(h, lend(pin, request), &out, &refusal, err)
	})
	answer := take(out)
	if e != nil {
		if ae, ok := e.(*Error); ok {
			ae.Refusal = uint32(refusal)
		}
		return nil, e
	}
	return answer, nil
}

// VerifyRangeProof checks a range proof (v1.11 sync.RangeProof bytes) of [start, end] (nil:
// unbounded) against root, for a request of keyLimit keys in a trie of branchFactor.
func VerifyRangeProof(proof []byte, root Hash, start, end []byte, keyLimit uint32, branchFactor int) error {
	var pin runtime.Pinner
	defer pin.Unpin()
	var err C.ArborBytes
	status := C.arbor_verify_range_proof(lend(&pin, proof), root.c(), lendBound(&pin, start), lendBound(&pin, end),
		C.uint32_t(keyLimit), C.uint32_t(branchFactor), &err)
	return check(status, err)
}
