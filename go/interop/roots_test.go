package interop

import (
	"fmt"
	"math/rand"
	"testing"

	arbor "github.com/arbor-db/arbor/go"
)

// AvalancheGo's merkledb and Arbor compute the same root for the same random state, at every
// branch factor, after puts and after deletes and empty values.
func TestRootsAgree(t *testing.T) {
	sizes := []int{10_000, 30_000, 100_000}
	for i, seed := range seeds(t) {
		n := sizes[i]
		for _, bf := range []int{2, 4, 16, 256} {
			t.Run(fmt.Sprintf("seed%d/%dkeys/bf%d", seed, n, bf), func(t *testing.T) {
				rng := rand.New(rand.NewSource(seed))
				ava, arb := newAva(t, bf), newArbor(t, bf)
				for step, ops := range randomOps(rng, n) {
					want := commitAva(t, ava, ops)
					got := commitArbor(t, arb, ops)
					if arbor.Hash(want) != got {
						t.Fatalf("seed %d, commit %d: AvalancheGo root %s, Arbor root %s", seed, step, want, got)
					}
				}
			})
		}
	}
}
