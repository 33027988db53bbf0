#!/usr/bin/env bash
# The main job: build arbor, load a 100k-key database on RocksDB, print its root and timing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --release --workspace --all-targets --locked
if [ -n "${ARBOR_DEMO_DIR:-}" ]; then
  work="$ARBOR_DEMO_DIR"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
echo "== loading 100,000 keys into $work/db"
start=$(date +%s.%N)
"$ARBOR_BIN" load --db "$work/db" --keys 100000 --seed 1
end=$(date +%s.%N)
echo "== arbor root"
"$ARBOR_BIN" root --db "$work/db"
python3 -c "print(f'wall time including process start: {($end - $start):.2f} s')"
