// Package interop runs AvalancheGo's own x/merkledb and x/sync (v1.11.6) against Arbor, through
// Arbor's Go package: roots, proofs both ways, syncs both ways over the bytes-in/bytes-out path.
// It is a module of its own so the Go package stays standard-library only.
package interop
