#!/usr/bin/env bash
# Snapshot benchmark (issue #23): a fresh replica bootstrapped three ways in one run, runs
# alternating: the loopback gRPC sync from `arbor serve` (the baseline), and `arbor sync
# --snapshot` from nginx (a static web server) and from an S3 server (versitygw), all on
# 127.0.0.1. Prints time, keys/s, bytes received and the serving process's CPU seconds per
# bootstrap (from /proc), and publishing time against `arbor export` of the same database.
# Writes docs/bench/snapshot.jsonl and the plot's table docs/bench/snapshot.csv.
#
#   scripts/bench-snapshot.sh [KEYS ...]    (default 1000000; ARBOR_SNAPSHOT_RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_versitygw
cargo build --release --workspace --bins >&2
exec python3 scripts/bench_snapshot.py "$CARGO_TARGET_DIR/release/arbor" "$@"
