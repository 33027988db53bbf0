// Package v115 shows which sync dialect Arbor speaks by running AvalancheGo v1.15.0's own
// database/merkle/sync code against it: v1.14+ requests are refused by Arbor with an error that
// names both dialects, and a v1.15 server refuses Arbor's v1.11 requests. A module of its own:
// one module cannot hold two versions of AvalancheGo.
package v115
