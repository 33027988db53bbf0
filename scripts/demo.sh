#!/usr/bin/env bash
# The main job: a real sync between real processes on embedded RocksDB databases.
#
#   1. build arbor and load a 100,000-key database;
#   2. start two `arbor serve` processes on copies of it, both churning (committing random
#      changes every 200 ms, like a chain producing blocks, and announcing each new root);
#   3. `arbor sync --follow` a fresh replica from both: it verifies every proof, retargets to
#      each announced root, and finishes once it holds the newest one;
#   4. stop the servers and print the three roots, key counts and timings: they must match.
#
# Set ARBOR_DEMO_DIR to keep the databases; ARBOR_DEMO_KEYS to change the size.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

KEYS=${ARBOR_DEMO_KEYS:-100000}
cargo build --release --workspace --all-targets --locked
if [ -n "${ARBOR_DEMO_DIR:-}" ]; then
  work="$ARBOR_DEMO_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${ARBOR_DEMO_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.2f} s')"; }

echo "== 1. loading $KEYS keys into $work/a"
t=$(now)
"$ARBOR_BIN" load --db "$work/a" --keys "$KEYS" --seed 1
echo "   local build took $(since "$t")"
cp -r "$work/a" "$work/b"

echo "== 2. starting two churning servers"
# Starts `arbor serve` on database $1 in the background; sets $peer to its URL.
start_server() {
  local name=$1 out="$work/serve-$1.log"
  "$ARBOR_BIN" serve --db "$work/$name" --listen 127.0.0.1:0 \
    --churn-keys 200 --churn-every 200 --churn-commits 20 >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^listening on ' "$out" 2>/dev/null && break
    sleep 0.1
  done
  local addr
  addr=$(sed -n 's/^listening on //p' "$out")
  [ -n "$addr" ] || { echo "server $name did not start:" >&2; cat "$out" >&2; exit 1; }
  echo "   server $name on $addr"
  peer="http://$addr"
}
start_server a
peer_a=$peer
start_server b
peer_b=$peer

echo "== 3. arbor sync --follow from both servers into $work/replica"
t=$(now)
# --insecure-follow: these peers speak plaintext on loopback; over a network, serve with
# --tls-cert/--tls-key and give https:// peers (follow mode trusts the roots they announce).
"$ARBOR_BIN" sync --db "$work/replica" --peer "$peer_a" --peer "$peer_b" --follow --insecure-follow --quiet-ms 1500
echo "   sync (following every new root) took $(since "$t")"

echo "== 4. stopping the servers and comparing"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
wait "${pids[@]}" 2>/dev/null || true
pids=()
status=0
roots=()
for db in a b replica; do
  out=$("$ARBOR_BIN" root --db "$work/$db")
  root=$(sed -n 1p <<<"$out")
  count=$(sed -n 2p <<<"$out")
  printf '   %-8s root %s  keys %s\n' "$db" "$root" "$count"
  roots+=("$root")
done
if [ "${roots[0]}" = "${roots[1]}" ] && [ "${roots[1]}" = "${roots[2]}" ]; then
  echo "== the replica holds the servers' final root"
else
  echo "== ROOTS DIFFER" >&2
  status=1
fi
exit $status
