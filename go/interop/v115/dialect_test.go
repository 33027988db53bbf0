package v115

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	arbor "github.com/arbor-db/arbor/go"
	"github.com/ava-labs/avalanchego/database"
	"github.com/ava-labs/avalanchego/database/memdb"
	"github.com/ava-labs/avalanchego/database/merkle/sync"
	"github.com/ava-labs/avalanchego/ids"
	pb "github.com/ava-labs/avalanchego/proto/pb/sync"
	"github.com/ava-labs/avalanchego/trace"
	"github.com/ava-labs/avalanchego/utils/units"
	"github.com/ava-labs/avalanchego/x/merkledb"
)

func TestMain(m *testing.M) {
	fmt.Println("interop: AvalancheGo v1.15.0 (database/merkle/sync, the v1.14+ dialect) against Arbor")
	os.Exit(m.Run())
}

// bothSides holds the same 500 keys in an AvalancheGo v1.15 merkledb and an Arbor database.
func bothSides(t *testing.T) (merkledb.MerkleDB, *arbor.DB, ids.ID) {
	t.Helper()
	ctx := context.Background()
	ava, err := merkledb.New(ctx, memdb.New(), merkledb.Config{
		BranchFactor:                merkledb.BranchFactor16,
		Hasher:                      merkledb.DefaultHasher,
		HistoryLength:               10,
		ValueNodeCacheSize:          units.MiB,
		IntermediateNodeCacheSize:   units.MiB,
		IntermediateWriteBufferSize: units.KiB,
		IntermediateWriteBatchSize:  256 * units.KiB,
		Reg:                         prometheus.NewRegistry(),
		Tracer:                      trace.Noop,
	})
	if err != nil {
		t.Fatal(err)
	}
	arb, err := arbor.Open("", arbor.Options{History: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = arb.Close() })
	var ops []database.BatchOp
	var batch arbor.Batch
	for i := 0; i < 500; i++ {
		k, v := []byte(fmt.Sprintf("key-%04d", i)), []byte(fmt.Sprintf("value-%d", i))
		ops = append(ops, database.BatchOp{Key: k, Value: v})
		batch.Put(k, v)
	}
	view, err := ava.NewView(ctx, merkledb.ViewChanges{BatchOps: ops})
	if err != nil {
		t.Fatal(err)
	}
	if err := view.CommitToDB(ctx); err != nil {
		t.Fatal(err)
	}
	root, _ := ava.GetMerkleRoot(ctx)
	if got, err := arb.Commit(&batch); err != nil || got != arbor.Hash(root) {
		t.Fatalf("roots differ: AvalancheGo v1.15 %s, Arbor %s (%v)", root, got, err)
	}
	return ava, arb, root
}

func handler(t *testing.T, db merkledb.MerkleDB) *sync.ProofHandler[*merkledb.RangeProof, *merkledb.ChangeProof] {
	t.Helper()
	h, err := sync.NewProofHandler(db, merkledb.RangeProofMarshaler{}, merkledb.ChangeProofMarshaler{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// v1.15's requests, encoded by its own protobuf types, are refused by Arbor by name; v1.15's own
// server answers them (the requests are real).
func TestArborRefusesTheNewerDialectByName(t *testing.T) {
	ava, arb, root := bothSides(t)
	requests := map[string]*pb.ProofRequest{
		"range": {Request: &pb.ProofRequest_RangeProof{RangeProof: &pb.RangeProofRequest{
			RootHash: root[:], KeyLimit: 100, BytesLimit: 1 << 20,
		}}},
		"change": {Request: &pb.ProofRequest_ChangeProof{ChangeProof: &pb.ChangeProofRequest{
			StartRootHash: root[:], EndRootHash: root[:], KeyLimit: 100, BytesLimit: 1 << 20,
		}}},
	}
	for name, request := range requests {
		bytes, err := proto.Marshal(request)
		if err != nil {
			t.Fatal(err)
		}
		_, err = arb.HandleRequest(bytes)
		var refusal *arbor.Error
		if !errors.As(err, &refusal) || refusal.Status != arbor.StatusRefused || refusal.Refusal != 3 ||
			!strings.Contains(refusal.Message, "v1.14+") || !strings.Contains(refusal.Message, "v1.11") {
			t.Fatalf("%s: Arbor's answer to a v1.15 request: %v", name, err)
		}
		t.Logf("%s: Arbor refuses: %s", name, refusal.Message)
		if name == "range" {
			answer, appErr := handler(t, ava).AppRequest(context.Background(), ids.EmptyNodeID, time.Now().Add(time.Minute), bytes)
			if appErr != nil || len(answer) == 0 {
				t.Fatalf("v1.15's own server refuses its own request: %v", appErr)
			}
		}
	}
}

// refusingNetwork carries Arbor's requests to a v1.15 server and returns its refusals.
type refusingNetwork struct {
	handler  *sync.ProofHandler[*merkledb.RangeProof, *merkledb.ChangeProof]
	answered atomic.Int32
	refused  atomic.Int32
	message  atomic.Value
}

func (n *refusingNetwork) Send(ctx context.Context, _ arbor.PeerID, request []byte) ([]byte, error) {
	answer, appErr := n.handler.AppRequest(ctx, ids.EmptyNodeID, time.Now().Add(time.Minute), request)
	if appErr != nil {
		n.refused.Add(1)
		n.message.Store(appErr.Message)
		return nil, &arbor.Refusal{Code: 3, Message: appErr.Message}
	}
	n.answered.Add(1)
	return answer, nil
}

// Arbor's sync manager, pointed at a v1.15 server, gets refusals only: v1.15 cannot read the
// v1.11 dialect either. (The sync would wait for a peer that speaks it; the test stops it.)
func TestTheNewerDialectRefusesArbor(t *testing.T) {
	ava, _, root := bothSides(t)
	replica, err := arbor.Open("", arbor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	s, err := arbor.StartSync(replica, arbor.Hash(root), arbor.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Join("avalanchego-v1.15"); err != nil {
		t.Fatal(err)
	}
	network := &refusingNetwork{handler: handler(t, ava)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil && network.refused.Load() < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	if err := s.Run(ctx, network); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a sync from a v1.15 server ended with %v", err)
	}
	if network.answered.Load() != 0 || network.refused.Load() == 0 {
		t.Fatalf("v1.15 answered %d and refused %d of Arbor's requests", network.answered.Load(), network.refused.Load())
	}
	t.Logf("v1.15 refuses Arbor's v1.11 request: %v", network.message.Load())
	if r, _ := replica.Root(); r == arbor.Hash(root) {
		t.Fatal("the replica reached the root without an answer")
	}
}
