package arbor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

func mustOpen(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open("", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func seed(t *testing.T) int64 {
	s := int64(1)
	if v := os.Getenv("ARBOR_TEST_SEED"); v != "" {
		parsed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("ARBOR_TEST_SEED: %v", err)
		}
		s = parsed
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (set ARBOR_TEST_SEED to replay)", s)
		}
	})
	return s
}

// The roots the Rust side checks against the reference vectors (merkledb/tests/it/vectors.rs).
func TestCommitsReachTheReferenceRoots(t *testing.T) {
	db := mustOpen(t, Options{})
	var b Batch
	b.Put([]byte("key"), []byte("value"))
	root, err := db.Commit(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := root.String(), "70efedfc5db7ea66f5b49ea566719633181d095fed089cce52224e11f889463a"; got != want {
		t.Fatalf("root %s, want %s", got, want)
	}
	value, found, err := db.Get([]byte("key"))
	if err != nil || !found || string(value) != "value" {
		t.Fatalf("get: %q %v %v", value, found, err)
	}
	var del Batch
	del.Delete([]byte("key"))
	if root, err = db.Commit(&del); err != nil || root != (Hash{}) {
		t.Fatalf("after deleting the only key: %s %v", root, err)
	}
	if _, found, _ := db.Get([]byte("key")); found {
		t.Fatal("deleted key found")
	}

	// Keys uvarint(i), values sha256(key), i < 1000: upstream's TestHashChangedNodes set.
	big := mustOpen(t, Options{})
	var set Batch
	for i := uint64(0); i < 1000; i++ {
		k := binary.AppendUvarint(nil, i)
		v := sha256.Sum256(k)
		set.Put(k, v[:])
	}
	if root, err = big.Commit(&set); err != nil {
		t.Fatal(err)
	}
	if got, want := root.String(), "bcaee17f6ee69de51c88f8a23af2a51605f5ab56fa0388488323cadf3db924f7"; got != want {
		t.Fatalf("uvarint set root %s, want %s", got, want)
	}

	for bf, want := range map[int]string{
		2:   "8ef111bae8f48e32e403f2cf2d5cc3285dc387ef3733b92687ec2039a27973cd",
		4:   "4dbb8d35d05084aa5af321f27941bd452c7c5b52448eb8c48b99d1db5f5f36c5",
		16:  "f3b6b7d99184423b41b68f09d2c3ac0fe7d3325c5d67d31fdb8ca5a17d62d38a",
		256: "41af2676ca1011b3df17c26849fb0368abc3e84b6e462e3f07a72fc46b067ee5",
	} {
		db := mustOpen(t, Options{BranchFactor: bf})
		var b Batch
		for i := byte(0); i < 5; i++ {
			b.Put([]byte{i}, []byte{i})
		}
		root, err := db.Commit(&b)
		if err != nil {
			t.Fatal(err)
		}
		if root.String() != want {
			t.Errorf("branch factor %d: root %s, want %s", bf, root, want)
		}
	}
}

func TestEmptyValuesAreValues(t *testing.T) {
	db := mustOpen(t, Options{})
	var b Batch
	b.Put([]byte("k"), []byte{})
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	value, found, err := db.Get([]byte("k"))
	if err != nil || !found || value == nil || len(value) != 0 {
		t.Fatalf("empty value: %v %v %v", value, found, err)
	}
}

func randomBatch(rng *rand.Rand, n int) *Batch {
	var b Batch
	for i := 0; i < n; i++ {
		k := make([]byte, 1+rng.Intn(12))
		v := make([]byte, rng.Intn(40))
		rng.Read(k)
		rng.Read(v)
		b.Put(k, v)
	}
	return &b
}

func TestProofsMadeInGoVerifyInGo(t *testing.T) {
	rng := rand.New(rand.NewSource(seed(t)))
	db := mustOpen(t, Options{History: 16})
	before, err := db.Commit(randomBatch(rng, 2000))
	if err != nil {
		t.Fatal(err)
	}
	start, end := []byte{0x40}, []byte{0xb0}
	proof, err := db.RangeProof(before, start, end, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyRangeProof(proof, before, start, end, 100, 16); err != nil {
		t.Fatalf("an honest range proof: %v", err)
	}
	for _, tamper := range []func([]byte) []byte{
		func(p []byte) []byte { q := bytes.Clone(p); q[len(q)/2] ^= 1; return q },
		func(p []byte) []byte { return p[:len(p)-1] },
	} {
		if err := VerifyRangeProof(tamper(proof), before, start, end, 100, 16); err == nil {
			t.Fatal("a tampered range proof verified")
		}
	}
	if err := VerifyRangeProof(proof, before, []byte{0x41}, end, 100, 16); err == nil {
		t.Fatal("a proof verified for bounds it was not made for")
	}

	// A replica at `before`, built from one proof of the whole state; the source moves on; a
	// change proof brings the replica over.
	full, err := db.RangeProof(before, nil, nil, 2048, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	replica := mustOpen(t, Options{})
	if r, err := replica.ApplyRangeProof(full, before, nil, nil, 2048); err != nil || r != before {
		t.Fatalf("replica root %s (%v), want %s", r, err, before)
	}
	var change Batch
	for i := 0; i < 50; i++ {
		k := []byte{byte(0x40 + i)}
		change.Put(k, []byte("new"))
	}
	after, err := db.Commit(&change)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := db.ChangeProof(before, after, nil, nil, 2048, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.VerifyChangeProof(answer, nil, nil, after, 2048); err != nil {
		t.Fatalf("an honest change proof: %v", err)
	}
	if err := replica.VerifyChangeProof(answer, nil, nil, before, 2048); err == nil {
		t.Fatal("a change proof verified against the wrong end root")
	}
	if _, err := replica.ApplyChangeProof(answer, nil, nil, before, 2048); err == nil {
		t.Fatal("a change proof applied against the wrong end root")
	}
	if r, _ := replica.Root(); r != before {
		t.Fatal("a rejected change proof wrote something")
	}
	if r, err := replica.ApplyChangeProof(answer, nil, nil, after, 2048); err != nil || r != after {
		t.Fatalf("replica root %s (%v) after the change proof, want %s", r, err, after)
	}
}

func TestRefusalsAndClosedHandlesAreErrors(t *testing.T) {
	db, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.HandleRequest([]byte{0xff, 0xff})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != StatusRefused || ae.Refusal != 3 || ae.Message == "" {
		t.Fatalf("a garbage request: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = db.Root()
	if !errors.As(err, &ae) || ae.Status != StatusInvalidHandle {
		t.Fatalf("a closed handle: %v", err)
	}
	if _, err := Open("", Options{BranchFactor: 3}); !errors.As(err, &ae) || ae.Status != StatusInvalidArgument {
		t.Fatalf("branch factor 3: %v", err)
	}
}

func TestRocksDBRoundTrip(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{History: 4})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed(t)))
	root, err := db.Commit(randomBatch(rng, 500))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{History: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if again, err := db.Root(); err != nil || again != root {
		t.Fatalf("reopened root %s (%v), want %s", again, err, root)
	}
}

// messageNetwork is a Go-side network: every request travels as a message to the peer's
// goroutine, which answers with HandleRequest. Peers can be cut off.
type messageNetwork struct {
	mu      sync.Mutex
	servers map[PeerID]chan message
	sent    int
	// onSend, if set, runs before the n-th request is delivered (n from 1), outside the lock.
	onSend func(n int)
}

type message struct {
	request []byte
	reply   chan result
}

type result struct {
	answer []byte
	err    error
}

func (n *messageNetwork) serve(peer PeerID, db *DB, delay time.Duration) {
	inbox := make(chan message, 64)
	n.mu.Lock()
	n.servers[peer] = inbox
	n.mu.Unlock()
	go func() {
		for m := range inbox {
			time.Sleep(delay)
			answer, err := db.HandleRequest(m.request)
			var ae *Error
			if errors.As(err, &ae) {
				err = &Refusal{Code: ae.Refusal, Message: ae.Message}
			}
			m.reply <- result{answer, err}
		}
	}()
}

func (n *messageNetwork) cut(peer PeerID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if inbox, ok := n.servers[peer]; ok {
		close(inbox)
		delete(n.servers, peer)
	}
}

func (n *messageNetwork) Send(ctx context.Context, peer PeerID, request []byte) ([]byte, error) {
	n.mu.Lock()
	n.sent++
	sent, hook := n.sent, n.onSend
	n.mu.Unlock()
	if hook != nil {
		hook(sent)
	}
	reply := make(chan result, 1)
	n.mu.Lock()
	inbox, ok := n.servers[peer]
	if ok {
		inbox <- message{request, reply}
	}
	n.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("peer %d is not connected", peer)
	}
	select {
	case r := <-reply:
		return r.answer, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
		return nil, errors.New("deadline passed")
	}
}

func TestSyncBetweenGoHeldDatabases(t *testing.T) {
	rng := rand.New(rand.NewSource(seed(t)))
	const keys = 20000
	state := randomBatch(rng, keys)
	var servers []*DB
	for i := 0; i < 2; i++ {
		db := mustOpen(t, Options{History: 8})
		if _, err := db.Commit(state); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, db)
	}
	target, _ := servers[0].Root()
	replica := mustOpen(t, Options{})
	s, err := StartSync(replica, target, SyncOptions{KeyLimit: 200, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	network := &messageNetwork{servers: map[PeerID]chan message{}}
	first, _ := s.Join("server-0")
	network.serve(first, servers[0], 2*time.Millisecond)

	// Before the 20th request (of about 100) is delivered, the second server connects, both
	// servers commit a new block and the sync is retargeted to it, then the first server
	// leaves. Inside the network's Send, so the sync cannot have finished before.
	retargeted := make(chan Hash, 1)
	var once sync.Once
	network.onSend = func(n int) {
		if n < 20 {
			return
		}
		once.Do(func() {
			defer close(retargeted)
			second, err := s.Join("server-1")
			if err != nil {
				return
			}
			network.serve(second, servers[1], 2*time.Millisecond)
			var block Batch
			for i := 0; i < 100; i++ {
				block.Put([]byte(fmt.Sprintf("block-%d", i)), []byte("new"))
			}
			var newer Hash
			for _, db := range servers {
				if newer, err = db.Commit(&block); err != nil {
					return
				}
			}
			if err := s.UpdateTarget(newer); err != nil {
				return
			}
			retargeted <- newer
			// The first server leaves a little later, with requests of its own in flight.
			go func() {
				time.Sleep(20 * time.Millisecond)
				network.cut(first)
				_ = s.Leave(first)
			}()
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Run(ctx, network); err != nil {
		t.Fatal(err)
	}
	newer, ok := <-retargeted
	if !ok {
		t.Fatal("the sync ended before the retarget: make it longer")
	}
	if root, _ := replica.Root(); root != newer {
		t.Fatalf("replica root %s, want the retargeted %s (first target %s)", root, newer, target)
	}
	if _, written, _ := s.Progress(); written == 0 {
		t.Fatal("no keys written")
	}
}

func TestEveryBufferIsFreed(t *testing.T) {
	before := liveBuffers()
	db, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed(t)))
	root, _ := db.Commit(randomBatch(rng, 100))
	for i := 0; i < 20; i++ {
		_, _, _ = db.Get([]byte{byte(i)})
		_, _ = db.RangeProof(root, nil, nil, 10, 1<<20)
		_, _ = db.HandleRequest([]byte{1, 2, 3})
	}
	_ = db.Close()
	_, _ = db.Root() // an error message is a buffer too
	if after := liveBuffers(); after != before {
		t.Fatalf("%d buffers not freed", after-before)
	}
}
