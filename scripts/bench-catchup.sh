#!/usr/bin/env bash
# Catch-up benchmark (issue #22's baseline): a replica at an older root brought to a newer one,
# against the share of keys that changed in between, three ways in one run: a fresh full sync,
# a catch-up from a server that still holds the replica's root in its history (change proofs),
# and one from a server whose history no longer reaches it (node diffs, or when most keys differ
# the replica emptied and the target fetched whole). Prints a table (bytes received, the median
# of ARBOR_CATCHUP_REPEAT runs' seconds and their spread; full syncs alternate with the
# beyond-history runs) and writes docs/bench/catchup.jsonl.
#
#   scripts/bench-catchup.sh [KEYS]        (default 1000000; ARBOR_CATCHUP_SHARES=0.01,0.25 picks
#                                           the shares, ARBOR_CATCHUP_REPEAT=3 the runs)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --workspace --bins >&2
exec python3 scripts/bench_catchup.py "$CARGO_TARGET_DIR/release/arbor" "${1:-1000000}"
