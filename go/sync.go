package arbor

/*
#include "arbor.h"
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
)

// PeerID names a peer of a Sync (given by Join, never reused within a Sync).
type PeerID uint64

// Network carries a sync's requests: the application's own transport (an AppRequest, say).
// Send delivers request to peer and returns the peer's answer; it is called from many
// goroutines at once. A peer's refusal is returned as a *Refusal; any other error counts as the
// peer being unavailable.
type Network interface {
	Send(ctx context.Context, peer PeerID, request []byte) ([]byte, error)
}

// Refusal is a peer's refusal of a request: its kind as a gRPC code number and a message (what
// HandleRequest's *Error carries on the peer's side).
type Refusal struct {
	Code    uint32
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// codeUnavailable is the refusal code for a request that did not reach its peer or got no answer.
const codeUnavailable = 14

// SyncOptions configure StartSync; zero values take the library's defaults.
type SyncOptions struct {
	// KeyLimit is the most keys asked for in one request (default 2048).
	KeyLimit uint32
	// Workers is the number of requests in flight to start with (default 8).
	Workers uint32
}

// Sync brings a database to a target root, verifying every proof before writing.
type Sync struct {
	mu     sync.Mutex
	handle C.uint64_t
}

// StartSync starts syncing db to target. Add peers with Join, then call Run.
func StartSync(db *DB, target Hash, opts SyncOptions) (*Sync, error) {
	var handle C.uint64_t
	e := db.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		// The database's handle is held for this call only; the sync keeps its own reference.
		return C.arbor_sync_start(h, target.c(), C.uint32_t(opts.KeyLimit), C.uint32_t(opts.Workers), &handle, err)
	})
	if e != nil {
		return nil, e
	}
	return &Sync{handle: handle}, nil
}

func (s *Sync) call(f func(handle C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var pin runtime.Pinner
	defer pin.Unpin()
	var err C.ArborBytes
	status := f(s.handle, &pin, &err)
	return check(status, err)
}

// Join adds a peer (at any time, also while Run runs) and returns its id.
func (s *Sync) Join(name string) (PeerID, error) {
	var peer C.uint64_t
	e := s.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_join(h, lend(pin, []byte(name)), &peer, err)
	})
	return PeerID(peer), e
}

// Leave removes a peer: it is asked nothing more, and its requests in flight are asked of others.
func (s *Sync) Leave(peer PeerID) error {
	return s.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_leave(h, C.uint64_t(peer), err)
	})
}

// UpdateTarget moves the target to a newer root the application trusts.
func (s *Sync) UpdateTarget(root Hash) error {
	return s.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_update_target(h, root.c(), err)
	})
}

// Progress returns the share of the keyspace synced at the current target and the keys written.
func (s *Sync) Progress() (fraction float64, keys uint64, err error) {
	var f C.double
	var k C.uint64_t
	err = s.call(func(h C.uint64_t, _ *runtime.Pinner, e *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_progress(h, &f, &k, e)
	})
	return float64(f), uint64(k), err
}

// Close stops the sync if it still runs; what it committed stays, for a later sync to resume.
func (s *Sync) Close() error {
	return s.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_close(h, err)
	})
}

// request is one request the library asks the application to send.
type request struct {
	id    uint64
	peer  PeerID
	bytes []byte
}

func (s *Sync) poll(timeoutMillis uint32) ([]request, bool, error) {
	var out C.ArborBytes
	var state C.ArborSyncState
	e := s.call(func(h C.uint64_t, _ *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_poll(h, C.uint32_t(timeoutMillis), &out, &state, err)
	})
	buf := take(out)
	if e != nil {
		return nil, false, e
	}
	var requests []request
	for len(buf) > 0 {
		if len(buf) < 20 {
			return nil, false, errors.New("arbor: truncated request list")
		}
		n := int(binary.LittleEndian.Uint32(buf[16:20]))
		if len(buf) < 20+n {
			return nil, false, errors.New("arbor: truncated request")
		}
		requests = append(requests, request{
			id:    binary.LittleEndian.Uint64(buf[0:8]),
			peer:  PeerID(binary.LittleEndian.Uint64(buf[8:16])),
			bytes: buf[20 : 20+n],
		})
		buf = buf[20+n:]
	}
	return requests, state == C.ARBOR_SYNC_STATE_DONE, nil
}

func (s *Sync) deliver(id uint64, answer []byte, refusal uint32) error {
	return s.call(func(h C.uint64_t, pin *runtime.Pinner, err *C.ArborBytes) C.ArborStatus {
		return C.arbor_sync_deliver(h, C.uint64_t(id), lend(pin, answer), C.uint32_t(refusal), err)
	})
}

type delivery struct {
	id      uint64
	answer  []byte
	refusal uint32
}

// Run drives the sync over network until the local root equals the target (nil), the sync fails,
// or ctx ends. Requests are sent concurrently, each in its own goroutine.
func (s *Sync) Run(ctx context.Context, network Network) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan delivery, 256)
	var senders sync.WaitGroup
	defer senders.Wait()
	for {
		// Hand back what has come in, then ask for more work; a short poll keeps answers moving.
	drain:
		for {
			select {
			case d := <-answers:
				if err := s.deliver(d.id, d.answer, d.refusal); err != nil {
					return err
				}
			default:
				break drain
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		requests, done, err := s.poll(2)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		for _, r := range requests {
			senders.Add(1)
			go func(r request) {
				defer senders.Done()
				answer, err := network.Send(ctx, r.peer, r.bytes)
				d := delivery{id: r.id, answer: answer}
				if err != nil {
					d.answer, d.refusal = []byte(err.Error()), codeUnavailable
					var refusal *Refusal
					if errors.As(err, &refusal) {
						d.refusal = refusal.Code
					}
				}
				select {
				case answers <- d:
				case <-ctx.Done():
				}
			}(r)
		}
	}
}
