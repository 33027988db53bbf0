#!/usr/bin/env bash
# WAN benchmark: `arbor sync --root` of KEYS keys through emulated links (arbor-linkemu) at
# several round trips and bandwidths, from 1 and 3 servers, over TLS, and from a mixed and a narrow
# set against their fast peer alone. Prints a table
# (goodput = bytes of answers received per second; utilisation = goodput / link capacity), and
# writes docs/bench/wan.jsonl and docs/bench/wan.svg.
#
#   scripts/bench-wan.sh [KEYS]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --workspace --bins >&2
exec python3 scripts/bench_wan.py "$CARGO_TARGET_DIR/release" "${1:-1000000}"
