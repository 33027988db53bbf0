#!/usr/bin/env bash
# Memory bound: the peak RSS of `arbor load` (10k-key commits of random 32-byte keys and values)
# under `--memory-mb M`, against issue #17's bound of M + 256 MiB. Peak RSS is the child's
# `ru_maxrss` from `wait4`, so a short peak (a close's write-back) is not missed. Prints a
# Markdown table; each load starts from an empty database, deleted after it.
#
#   scripts/bench-memory.sh [KEYS [M ...]]   (default: 10000000 keys; M = 256 512 1024 2048)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
KEYS=${1:-10000000}
[ $# -gt 0 ] && shift
BUDGETS=("$@")
[ ${#BUDGETS[@]} -gt 0 ] || BUDGETS=(256 512 1024 2048)
cargo build --release -p arbor-node >&2
ARBOR="$CARGO_TARGET_DIR/release/arbor"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "| M | keys | load keys/s | peak RSS | bound (M + 256 MiB) |"
echo "|---|---|---|---|---|"
for m in "${BUDGETS[@]}"; do
    python3 - "$ARBOR" "$WORK/db" "$KEYS" "$m" <<'PY'
import os, re, subprocess, sys

arbor, db, keys, m = sys.argv[1:]
child = subprocess.Popen(
    [arbor, "load", "--db", db, "--keys", keys, "--memory-mb", m],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
if status != 0:
    sys.exit(f"arbor load --memory-mb {m} failed:\n{out}")
rate = int(re.search(r"\((\d+) keys/s\)", out).group(1))
peak = usage.ru_maxrss // 1024
bound = int(m) + 256
mark = "within" if peak <= bound else "OVER"
print(f"| {m} MiB | {int(keys):,} | {rate:,} | {peak:,} MiB ({mark}) | {bound:,} MiB |")
PY
    rm -rf "$WORK/db"
done
