package interop

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	arbor "github.com/arbor-db/arbor/go"
	"github.com/ava-labs/avalanchego/database"
	"github.com/ava-labs/avalanchego/database/memdb"
	"github.com/ava-labs/avalanchego/ids"
	pb "github.com/ava-labs/avalanchego/proto/pb/sync"
	"github.com/ava-labs/avalanchego/trace"
	"github.com/ava-labs/avalanchego/utils/maybe"
	"github.com/ava-labs/avalanchego/utils/units"
	"github.com/ava-labs/avalanchego/x/merkledb"
)

// The AvalancheGo version under test, printed by TestMain.
const avalancheGoVersion = "v1.11.6"

func TestMain(m *testing.M) {
	fmt.Printf("interop: AvalancheGo %s (x/merkledb, x/sync) against Arbor\n", avalancheGoVersion)
	os.Exit(m.Run())
}

// seeds are the test's seeds: ARBOR_TEST_SEED replaces the first.
func seeds(t *testing.T) []int64 {
	s := []int64{1, 2, 3}
	if v := os.Getenv("ARBOR_TEST_SEED"); v != "" {
		parsed, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("ARBOR_TEST_SEED: %v", err)
		}
		s[0] = parsed
	}
	return s
}

var branchFactors = map[int]merkledb.BranchFactor{
	2:   merkledb.BranchFactor2,
	4:   merkledb.BranchFactor4,
	16:  merkledb.BranchFactor16,
	256: merkledb.BranchFactor256,
}

func newAva(t *testing.T, bf int) merkledb.MerkleDB {
	t.Helper()
	db, err := merkledb.New(context.Background(), memdb.New(), merkledb.Config{
		BranchFactor:                branchFactors[bf],
		Hasher:                      merkledb.DefaultHasher,
		HistoryLength:               300,
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
	return db
}

func newArbor(t *testing.T, bf int) *arbor.DB {
	t.Helper()
	db, err := arbor.Open("", arbor.Options{BranchFactor: bf, History: 300})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// op is one write of a random workload: a put (value non-nil, possibly empty) or a delete.
type op struct {
	key, value []byte
	delete     bool
}

// randomOps makes n puts of fresh random keys (some with empty values), then deletes and
// overwrites of some of them.
func randomOps(rng *rand.Rand, n int) [][]op {
	first := make([]op, 0, n)
	for i := 0; i < n; i++ {
		k := make([]byte, 1+rng.Intn(33))
		rng.Read(k)
		v := make([]byte, rng.Intn(64))
		rng.Read(v)
		first = append(first, op{key: k, value: v})
	}
	second := make([]op, 0, n/5)
	for i := 0; i < n/5; i++ {
		o := first[rng.Intn(len(first))]
		switch rng.Intn(3) {
		case 0:
			second = append(second, op{key: o.key, delete: true})
		case 1:
			second = append(second, op{key: o.key, value: []byte{}})
		default:
			second = append(second, op{key: o.key, value: []byte{byte(i), byte(i >> 8)}})
		}
	}
	return [][]op{first, second}
}

func commitAva(t *testing.T, db merkledb.MerkleDB, ops []op) ids.ID {
	t.Helper()
	ctx := context.Background()
	batch := make([]database.BatchOp, len(ops))
	for i, o := range ops {
		batch[i] = database.BatchOp{Key: o.key, Value: o.value, Delete: o.delete}
	}
	view, err := db.NewView(ctx, merkledb.ViewChanges{BatchOps: batch})
	if err != nil {
		t.Fatal(err)
	}
	if err := view.CommitToDB(ctx); err != nil {
		t.Fatal(err)
	}
	root, err := db.GetMerkleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func commitArbor(t *testing.T, db *arbor.DB, ops []op) arbor.Hash {
	t.Helper()
	var b arbor.Batch
	for _, o := range ops {
		if o.delete {
			b.Delete(o.key)
		} else {
			b.Put(o.key, o.value)
		}
	}
	root, err := db.Commit(&b)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func toMaybe(b []byte) maybe.Maybe[[]byte] {
	if b == nil {
		return maybe.Nothing[[]byte]()
	}
	return maybe.Some(b)
}

// Conversions between AvalancheGo's proofs and the v1.11 wire bytes Arbor speaks.

func avaRangeProof(t *testing.T, bytes []byte) *merkledb.RangeProof {
	t.Helper()
	var message pb.RangeProof
	if err := proto.Unmarshal(bytes, &message); err != nil {
		t.Fatalf("AvalancheGo cannot decode Arbor's range proof: %v", err)
	}
	var proof merkledb.RangeProof
	if err := proof.UnmarshalProto(&message); err != nil {
		t.Fatalf("AvalancheGo rejects Arbor's range proof encoding: %v", err)
	}
	return &proof
}

func rangeProofBytes(t *testing.T, proof *merkledb.RangeProof) []byte {
	t.Helper()
	bytes, err := proto.Marshal(proof.ToProto())
	if err != nil {
		t.Fatal(err)
	}
	return bytes
}

func avaChangeProof(t *testing.T, bytes []byte) *merkledb.ChangeProof {
	t.Helper()
	var message pb.SyncGetChangeProofResponse
	if err := proto.Unmarshal(bytes, &message); err != nil {
		t.Fatalf("AvalancheGo cannot decode Arbor's change-proof answer: %v", err)
	}
	changes := message.GetChangeProof()
	if changes == nil {
		t.Fatalf("Arbor answered a change-proof request with a range proof")
	}
	var proof merkledb.ChangeProof
	if err := proof.UnmarshalProto(changes); err != nil {
		t.Fatalf("AvalancheGo rejects Arbor's change proof encoding: %v", err)
	}
	return &proof
}

func changeProofBytes(t *testing.T, proof *merkledb.ChangeProof) []byte {
	t.Helper()
	bytes, err := proto.Marshal(&pb.SyncGetChangeProofResponse{
		Response: &pb.SyncGetChangeProofResponse_ChangeProof{ChangeProof: proof.ToProto()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes
}
