package interop

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	arbor "github.com/arbor-db/arbor/go"
	"github.com/ava-labs/avalanchego/ids"
	"github.com/ava-labs/avalanchego/snow/engine/common"
	"github.com/ava-labs/avalanchego/utils/logging"
	"github.com/ava-labs/avalanchego/version"
	"github.com/ava-labs/avalanchego/x/merkledb"
	xsync "github.com/ava-labs/avalanchego/x/sync"
	"github.com/prometheus/client_golang/prometheus"
)

// toArbor is an x/sync NetworkClient whose every peer is an Arbor server: the request bytes
// AvalancheGo's client marshals go to Arbor's HandleRequest, the answer bytes come back.
type toArbor struct {
	server    *arbor.DB
	node      ids.NodeID
	requests  atomic.Int32
	onRequest func(n int32)
}

func (n *toArbor) RequestAny(ctx context.Context, request []byte) (ids.NodeID, []byte, error) {
	answer, err := n.Request(ctx, n.node, request)
	return n.node, answer, err
}

func (n *toArbor) Request(_ context.Context, _ ids.NodeID, request []byte) ([]byte, error) {
	if n.onRequest != nil {
		n.onRequest(n.requests.Add(1))
	}
	answer, err := n.server.HandleRequest(request)
	if err != nil {
		return nil, fmt.Errorf("arbor refused: %w", err)
	}
	return answer, nil
}

func (*toArbor) AppResponse(context.Context, ids.NodeID, uint32, []byte) error { return nil }
func (*toArbor) AppRequestFailed(context.Context, ids.NodeID, uint32) error    { return nil }
func (*toArbor) Connected(context.Context, ids.NodeID, *version.Application) error {
	return nil
}
func (*toArbor) Disconnected(context.Context, ids.NodeID) error { return nil }

// AvalancheGo's x/sync manager syncs a fresh AvalancheGo merkledb from an Arbor server, with a
// retarget to a newer root in the middle.
func TestAvalancheGoSyncsFromArbor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewSource(seeds(t)[0]))
	server := newArbor(t, 16)
	state := randomOps(rng, 20_000)
	commitArbor(t, server, state[0])
	first, _ := server.Root()

	replica := newAva(t, 16)
	network := &toArbor{server: server, node: ids.GenerateTestNodeID()}
	metrics, err := xsync.NewMetrics("interop", prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	client, err := xsync.NewClient(&xsync.ClientConfig{
		NetworkClient: network,
		Log:           logging.NoLog{},
		Metrics:       metrics,
		BranchFactor:  merkledb.BranchFactor16,
	})
	if err != nil {
		t.Fatal(err)
	}
	manager, err := xsync.NewManager(xsync.ManagerConfig{
		DB:                    replica,
		Client:                client,
		SimultaneousWorkLimit: 4,
		Log:                   logging.NoLog{},
		TargetRoot:            ids.ID(first),
		BranchFactor:          merkledb.BranchFactor16,
	})
	if err != nil {
		t.Fatal(err)
	}
	// On the third request the server commits a block, and the sync is retargeted to it.
	var final arbor.Hash
	var retarget sync.Once
	network.onRequest = func(n int32) {
		if n < 3 {
			return
		}
		retarget.Do(func() {
			final = commitArbor(t, server, state[1])
			if err := manager.UpdateSyncTarget(ids.ID(final)); err != nil {
				t.Errorf("retarget: %v", err)
			}
		})
	}
	if err := manager.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := manager.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := replica.GetMerkleRoot(ctx)
	if final == (arbor.Hash{}) || arbor.Hash(got) != final {
		t.Fatalf("AvalancheGo synced to %s, want the retargeted %s (first %s)", got, final, first)
	}
	t.Logf("AvalancheGo synced 20,000 keys from Arbor in %d requests, retargeted once", network.requests.Load())
}

// capture is an AppSender that hands each response to the request waiting for it.
type capture struct {
	common.AppSender
	mu      sync.Mutex
	waiting map[uint32]chan []byte
}

func (c *capture) SendAppResponse(_ context.Context, _ ids.NodeID, requestID uint32, response []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.waiting[requestID]; ok {
		ch <- response
		delete(c.waiting, requestID)
	}
	return nil
}

func (c *capture) SendAppError(_ context.Context, _ ids.NodeID, requestID uint32, _ int32, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.waiting[requestID]; ok {
		close(ch)
		delete(c.waiting, requestID)
	}
	return nil
}

// toAvalancheGo is an Arbor Network whose every peer is an AvalancheGo x/sync server: requests
// go to its AppRequest, answers come back through its AppSender.
type toAvalancheGo struct {
	server    *xsync.NetworkServer
	sender    *capture
	nextID    atomic.Uint32
	requests  atomic.Int32
	onRequest func(n int32)
}

func (n *toAvalancheGo) Send(ctx context.Context, _ arbor.PeerID, request []byte) ([]byte, error) {
	if n.onRequest != nil {
		n.onRequest(n.requests.Add(1))
	}
	id := n.nextID.Add(1)
	answer := make(chan []byte, 1)
	n.sender.mu.Lock()
	n.sender.waiting[id] = answer
	n.sender.mu.Unlock()
	if err := n.server.AppRequest(ctx, ids.EmptyNodeID, id, time.Now().Add(10*time.Second), request); err != nil {
		return nil, err
	}
	select {
	case bytes, ok := <-answer:
		if !ok {
			return nil, errors.New("AvalancheGo answered with an error")
		}
		return bytes, nil
	case <-time.After(2 * time.Second):
		// AvalancheGo drops requests it cannot serve without answering.
		n.sender.mu.Lock()
		delete(n.sender.waiting, id)
		n.sender.mu.Unlock()
		return nil, errors.New("no answer from AvalancheGo")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Arbor's sync manager syncs a fresh Arbor database from an AvalancheGo x/sync server, with a
// retarget to a newer root in the middle (brought over with AvalancheGo's change proofs).
func TestArborSyncsFromAvalancheGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewSource(seeds(t)[0]))
	server := newAva(t, 16)
	state := randomOps(rng, 20_000)
	first := commitAva(t, server, state[0])

	sender := &capture{waiting: map[uint32]chan []byte{}}
	network := &toAvalancheGo{server: xsync.NewNetworkServer(sender, server, logging.NoLog{}), sender: sender}
	replica := newArbor(t, 16)
	s, err := arbor.StartSync(replica, arbor.Hash(first), arbor.SyncOptions{KeyLimit: 500, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Join("avalanchego"); err != nil {
		t.Fatal(err)
	}
	final := make(chan ids.ID, 1)
	var retarget sync.Once
	network.onRequest = func(n int32) {
		if n < 10 {
			return
		}
		retarget.Do(func() {
			root := commitAva(t, server, state[1])
			if err := s.UpdateTarget(arbor.Hash(root)); err != nil {
				t.Errorf("retarget: %v", err)
			}
			final <- root
		})
	}
	if err := s.Run(ctx, network); err != nil {
		t.Fatal(err)
	}
	var want ids.ID
	select {
	case want = <-final:
	default:
		t.Fatal("the sync ended before the retarget")
	}
	if got, _ := replica.Root(); got != arbor.Hash(want) {
		t.Fatalf("Arbor synced to %s, want the retargeted %s (first %s)", got, want, first)
	}
	t.Logf("Arbor synced 20,000 keys from AvalancheGo in %d requests, retargeted once", network.requests.Load())
}
