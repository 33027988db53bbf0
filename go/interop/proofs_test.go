package interop

import (
	"context"
	"math/rand"
	"testing"

	arbor "github.com/arbor-db/arbor/go"
	"github.com/ava-labs/avalanchego/ids"
	"github.com/ava-labs/avalanchego/x/merkledb"
)

const tokenSize16 = 4 // bits per token at branch factor 16

// sameState builds the same n-key state in both databases and returns its root.
func sameState(t *testing.T, seed int64, n int) (merkledb.MerkleDB, *arbor.DB, ids.ID, []op) {
	rng := rand.New(rand.NewSource(seed))
	ops := randomOps(rng, n)[0]
	ava, arb := newAva(t, 16), newArbor(t, 16)
	root := commitAva(t, ava, ops)
	if got := commitArbor(t, arb, ops); arbor.Hash(root) != got {
		t.Fatalf("roots differ: %s vs %s", root, got)
	}
	return ava, arb, root, ops
}

// tampered returns broken copies of a range proof: a flipped value bit, a dropped key.
func tampered(proof *merkledb.RangeProof) map[string]*merkledb.RangeProof {
	out := map[string]*merkledb.RangeProof{}
	if len(proof.KeyValues) < 3 {
		return out
	}
	flip := *proof
	flip.KeyValues = append([]merkledb.KeyValue(nil), proof.KeyValues...)
	mid := len(flip.KeyValues) / 2
	flip.KeyValues[mid].Value = append([]byte{}, flip.KeyValues[mid].Value...)
	flip.KeyValues[mid].Value = append(flip.KeyValues[mid].Value, 0)
	flip.KeyValues[mid].Value[0] ^= 1
	out["flipped value bit"] = &flip
	drop := *proof
	drop.KeyValues = append(append([]merkledb.KeyValue(nil), proof.KeyValues[:mid]...), proof.KeyValues[mid+1:]...)
	out["dropped key"] = &drop
	return out
}

func TestRangeProofsBothWays(t *testing.T) {
	ctx := context.Background()
	for _, seed := range seeds(t) {
		ava, arb, root, _ := sameState(t, seed, 1500)
		// About 190 keys: a proof of the whole range, not cut short by the key limit.
		start, end := []byte{0x30}, []byte{0x50}

		// Arbor's proof, checked and committed by AvalancheGo.
		fromArbor, err := arb.RangeProof(arbor.Hash(root), start, end, 300, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		proof := avaRangeProof(t, fromArbor)
		if err := proof.Verify(ctx, toMaybe(start), toMaybe(end), root, tokenSize16, merkledb.DefaultHasher); err != nil {
			t.Fatalf("seed %d: AvalancheGo rejects Arbor's range proof: %v", seed, err)
		}
		for name, bad := range tampered(proof) {
			if bad.Verify(ctx, toMaybe(start), toMaybe(end), root, tokenSize16, merkledb.DefaultHasher) == nil {
				t.Fatalf("AvalancheGo accepts Arbor's proof with a %s", name)
			}
		}
		// Moved bounds that make the proof lie: a start moved down claims [0x20, 0x30) empty
		// (random keys put about 90 there); an end moved down, into the proven keys, claims
		// keys outside the range. (v1.11 proves a range up to its last key only, so an end moved
		// past it, or a bound moved within a gap without keys, is no lie, and both accept it.) (A bound moved into a gap without keys is no lie, and both
		// sides may accept it.)
		moved := []byte{0x20}
		if proof.Verify(ctx, toMaybe(moved), toMaybe(end), root, tokenSize16, merkledb.DefaultHasher) == nil {
			t.Fatal("AvalancheGo accepts Arbor's proof for a moved start bound")
		}
		if proof.Verify(ctx, toMaybe(start), toMaybe([]byte{0x40}), root, tokenSize16, merkledb.DefaultHasher) == nil {
			t.Fatal("AvalancheGo accepts Arbor's proof for a moved end bound")
		}
		// The whole state in one proof, committed into a fresh AvalancheGo database.
		whole, err := arb.RangeProof(arbor.Hash(root), nil, nil, 2048, 2<<20)
		if err != nil {
			t.Fatal(err)
		}
		fresh := newAva(t, 16)
		if err := fresh.CommitRangeProof(ctx, toMaybe(nil), toMaybe(nil), avaRangeProof(t, whole)); err != nil {
			t.Fatal(err)
		}
		if got, _ := fresh.GetMerkleRoot(ctx); got != root {
			t.Fatalf("AvalancheGo committed Arbor's proof to %s, want %s", got, root)
		}

		// AvalancheGo's proof, checked and committed by Arbor.
		avaProof, err := ava.GetRangeProofAtRoot(ctx, root, toMaybe(start), toMaybe(end), 300)
		if err != nil {
			t.Fatal(err)
		}
		if err := arbor.VerifyRangeProof(rangeProofBytes(t, avaProof), arbor.Hash(root), start, end, 300, 16); err != nil {
			t.Fatalf("seed %d: Arbor rejects AvalancheGo's range proof: %v", seed, err)
		}
		for name, bad := range tampered(avaProof) {
			if arbor.VerifyRangeProof(rangeProofBytes(t, bad), arbor.Hash(root), start, end, 300, 16) == nil {
				t.Fatalf("Arbor accepts AvalancheGo's proof with a %s", name)
			}
		}
		if arbor.VerifyRangeProof(rangeProofBytes(t, avaProof), arbor.Hash(root), moved, end, 300, 16) == nil {
			t.Fatal("Arbor accepts AvalancheGo's proof for a moved start bound")
		}
		if arbor.VerifyRangeProof(rangeProofBytes(t, avaProof), arbor.Hash(root), start, []byte{0x40}, 300, 16) == nil {
			t.Fatal("Arbor accepts AvalancheGo's proof for a moved end bound")
		}
		avaWhole, err := ava.GetRangeProofAtRoot(ctx, root, toMaybe(nil), toMaybe(nil), 2048)
		if err != nil {
			t.Fatal(err)
		}
		replica := newArbor(t, 16)
		got, err := replica.ApplyRangeProof(rangeProofBytes(t, avaWhole), arbor.Hash(root), nil, nil, 2048)
		if err != nil || got != arbor.Hash(root) {
			t.Fatalf("Arbor committed AvalancheGo's proof to %s (%v), want %s", got, err, root)
		}
	}
}

func TestChangeProofsBothWays(t *testing.T) {
	ctx := context.Background()
	for _, seed := range seeds(t) {
		ava, arb, before, ops := sameState(t, seed, 1500)
		// Replicas of both kinds at `before`.
		avaReplica, arbReplica := newAva(t, 16), newArbor(t, 16)
		commitAva(t, avaReplica, ops)
		commitArbor(t, arbReplica, ops)

		rng := rand.New(rand.NewSource(seed + 100))
		var changes []op
		for i := 0; i < 200; i++ {
			o := ops[rng.Intn(len(ops))]
			if i%3 == 0 {
				changes = append(changes, op{key: o.key, delete: true})
			} else {
				changes = append(changes, op{key: o.key, value: []byte{byte(i)}})
			}
		}
		changes = append(changes, op{key: []byte("new key"), value: []byte{}})
		after := commitAva(t, ava, changes)
		if got := commitArbor(t, arb, changes); arbor.Hash(after) != got {
			t.Fatalf("roots differ after the changes: %s vs %s", after, got)
		}

		// Arbor's change proof, verified and committed by AvalancheGo.
		answer, err := arb.ChangeProof(arbor.Hash(before), arbor.Hash(after), nil, nil, 2048, 2<<20)
		if err != nil {
			t.Fatal(err)
		}
		proof := avaChangeProof(t, answer)
		if err := avaReplica.VerifyChangeProof(ctx, proof, toMaybe(nil), toMaybe(nil), after); err != nil {
			t.Fatalf("seed %d: AvalancheGo rejects Arbor's change proof: %v", seed, err)
		}
		if len(proof.KeyChanges) > 2 {
			bad := *proof
			bad.KeyChanges = append(append([]merkledb.KeyChange(nil), proof.KeyChanges[:1]...), proof.KeyChanges[2:]...)
			if avaReplica.VerifyChangeProof(ctx, &bad, toMaybe(nil), toMaybe(nil), after) == nil {
				t.Fatal("AvalancheGo accepts Arbor's change proof with a dropped change")
			}
		}
		if err := avaReplica.CommitChangeProof(ctx, proof); err != nil {
			t.Fatal(err)
		}
		if got, _ := avaReplica.GetMerkleRoot(ctx); got != after {
			t.Fatalf("AvalancheGo committed Arbor's change proof to %s, want %s", got, after)
		}

		// AvalancheGo's change proof, verified and committed by Arbor.
		avaProof, err := ava.GetChangeProof(ctx, before, after, toMaybe(nil), toMaybe(nil), 2048)
		if err != nil {
			t.Fatal(err)
		}
		if len(avaProof.KeyChanges) > 2 {
			bad := *avaProof
			bad.KeyChanges = append(append([]merkledb.KeyChange(nil), avaProof.KeyChanges[:1]...), avaProof.KeyChanges[2:]...)
			if arbReplica.VerifyChangeProof(changeProofBytes(t, &bad), nil, nil, arbor.Hash(after), 2048) == nil {
				t.Fatal("Arbor accepts AvalancheGo's change proof with a dropped change")
			}
		}
		got, err := arbReplica.ApplyChangeProof(changeProofBytes(t, avaProof), nil, nil, arbor.Hash(after), 2048)
		if err != nil || got != arbor.Hash(after) {
			t.Fatalf("seed %d: Arbor committed AvalancheGo's change proof to %s (%v), want %s", seed, got, err, after)
		}
	}
}
