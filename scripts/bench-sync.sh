#!/usr/bin/env bash
# End-to-end sync benchmark: `arbor sync` of N keys (32-byte keys, 32-byte values) over loopback
# gRPC from 1 and from 3 `arbor serve` processes, against `arbor load` of the same keys measured
# in the same run. Prints wall time, keys/s and peak RSS of each. (TLS: scripts/bench-tls.sh.)
#
#   scripts/bench-sync.sh [KEYS] [WORKERS]      (default 1000000 keys, 8 workers)
#
# ARBOR=PATH runs that binary instead of building this checkout's (to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
KEYS=${1:-1000000}
WORKERS=${2:-8}
if [ -z "${ARBOR:-}" ]; then
    cargo build --release --workspace --bins >&2
    ARBOR="$CARGO_TARGET_DIR/release/arbor"
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Runs a command under /usr/bin/time-like measurement: prints "seconds peak_rss_kib".
measure() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
elapsed = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{elapsed:.2f} {rss}")
PY
}

# Starts `arbor serve` on database $1 (extra flags after it) in the background (not in a
# subshell, so the cleanup trap knows its PID); sets $URL to its address.
serve() {
    local out="$WORK/serve-$1.out"
    local db="$1"
    shift
    "$ARBOR" serve --db "$WORK/$db" --listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
    PIDS+=($!)
    # Opening a large database takes a while: up to 60 s.
    for _ in $(seq 600); do
        grep -q '^listening on ' "$out" 2>/dev/null && break
        sleep 0.1
    done
    URL=$(sed -n 's/^listening on /http:\/\//p' "$out")
}

read -r LOAD_S LOAD_RSS < <(measure "$ARBOR" load --db "$WORK/s1" --keys "$KEYS")
ROOT=$("$ARBOR" root --db "$WORK/s1" | head -1)
cp -r "$WORK/s1" "$WORK/s2"
cp -r "$WORK/s1" "$WORK/s3"
serve s1
P1=$URL
read -r ONE_S ONE_RSS < <(measure "$ARBOR" sync --progress-ms 60000 --db "$WORK/c1" --peer "$P1" --root "$ROOT" --workers "$WORKERS")
serve s2
P2=$URL
serve s3
P3=$URL
read -r THREE_S THREE_RSS < <(measure "$ARBOR" sync --progress-ms 60000 --db "$WORK/c3" --peer "$P1" --peer "$P2" --peer "$P3" --root "$ROOT" --workers "$WORKERS")
for c in c1 c3; do
    test "$("$ARBOR" root --db "$WORK/$c" | head -1)" = "$ROOT" || { echo "root mismatch in $c" >&2; exit 1; }
done

rate() { python3 -c "print(f'{$KEYS / $1:,.0f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "keys=$KEYS workers=$WORKERS root=$ROOT"
printf '%-28s %8s %12s %8s %10s\n' job seconds keys/s vs_load peak_rss_MiB
printf '%-28s %8s %12s %8s %10s\n' "arbor load (baseline)" "$LOAD_S" "$(rate "$LOAD_S")" 1.00 $((LOAD_RSS / 1024))
printf '%-28s %8s %12s %8s %10s\n' "arbor sync, 1 server" "$ONE_S" "$(rate "$ONE_S")" "$(ratio "$ONE_S" "$LOAD_S")" $((ONE_RSS / 1024))
printf '%-28s %8s %12s %8s %10s\n' "arbor sync, 3 servers" "$THREE_S" "$(rate "$THREE_S")" "$(ratio "$THREE_S" "$LOAD_S")" $((THREE_RSS / 1024))
