#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit + integration + doc tests, the Go package.
# Everything builds with the release profile: one optimised build of RocksDB serves all steps.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
prune_cache
ensure_versitygw

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (-D warnings)"
cargo clippy --release --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --release --workspace --lib --bins --tests --locked
echo "== the scale benchmark's code path, at 20k keys"
cargo test --release --bench scale --locked
echo "== doc tests"
cargo test --release --workspace --doc --locked
echo "== cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --lib --locked
echo "== the Go package over the C ABI (go vet, go test -race)"
cargo build --release --workspace --locked  # libarbor_ffi.a for cgo (the workspace build: same features as above)
stage_ffi
(cd go && test -z "$(gofmt -l .)" && go vet ./... && go test -race -count=1 ./...)
echo "== interop with AvalancheGo's own x/merkledb and x/sync (go/interop)"
# Two modules: v1.11.6 (the dialect Arbor speaks) and v1.15.0 (the newer one, refused both ways).
for module in go/interop go/interop/v115; do
  (cd "$module" && go mod download) || {
    echo "interop: cannot fetch AvalancheGo's Go modules (github.com/ava-labs/avalanchego, pinned in $module/go.mod) from the Go module proxy" >&2
    exit 1
  }
  (cd "$module" && test -z "$(gofmt -l .)" && go vet ./... &&
    GOFLAGS=-mod=mod go test -count=1 -v ./... | grep -E '^(interop|--- |ok|FAIL|panic)|_test.go')
done
echo "all tests passed"
