#!/usr/bin/env bash
# The cost of TLS: `arbor sync --root` of N keys from one `arbor serve` over plaintext and from
# one over TLS (a certificate made with openssl for this run), alternating, R times each, over
# loopback. Prints every time, the medians and the TLS/plaintext rate ratio.
#
#   scripts/bench-tls.sh [KEYS] [ROUNDS]      (default 1000000 keys, 5 rounds)
#
# ARBOR=PATH runs that binary instead of building this checkout's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
KEYS=${1:-1000000}
ROUNDS=${2:-5}
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

serve() {
    local out="$WORK/serve-$1.out" db="$1"
    shift
    "$ARBOR" serve --db "$WORK/$db" --listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 600); do
        grep -q '^listening on ' "$out" 2>/dev/null && break
        sleep 0.1
    done
    URL=$(sed -n 's/^listening on /http:\/\//p' "$out")
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -extfile "$WORK/ext" -out "$WORK/tls.pem" 2>/dev/null

ROOT=$("$ARBOR" load --db "$WORK/plain" --keys "$KEYS" | head -1)
cp -r "$WORK/plain" "$WORK/tls"
serve plain
PLAIN=$URL
serve tls --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
TLS=${URL/http:/https:}

shopt -s inherit_errexit
timed_sync() { # flags of the sync; prints its seconds
    rm -rf "$WORK/client"
    local start end
    start=$(date +%s.%N)
    "$ARBOR" sync --progress-ms 60000 --db "$WORK/client" --root "$ROOT" "$@" >/dev/null
    end=$(date +%s.%N)
    test "$("$ARBOR" root --db "$WORK/client" | head -1)" = "$ROOT"
    python3 -c "print(f'{$end - $start:.3f}')"
}
plain_times=()
tls_times=()
for i in $(seq "$ROUNDS"); do
    p=$(timed_sync --peer "$PLAIN")
    t=$(timed_sync --peer "$TLS" --ca "$WORK/ca.pem")
    echo "round $i: plaintext $p s, TLS $t s"
    plain_times+=("$p")
    tls_times+=("$t")
done
python3 - "$KEYS" "${plain_times[*]}" "${tls_times[*]}" <<'PY'
import statistics, sys
keys = int(sys.argv[1])
plain = [float(x) for x in sys.argv[2].split()]
tls = [float(x) for x in sys.argv[3].split()]
mp, mt = statistics.median(plain), statistics.median(tls)
print(f"keys={keys}")
print(f"plaintext: median {mp:.3f} s ({keys / mp:,.0f} keys/s), range {min(plain):.3f}-{max(plain):.3f} s")
print(f"TLS:       median {mt:.3f} s ({keys / mt:,.0f} keys/s), range {min(tls):.3f}-{max(tls):.3f} s")
print(f"TLS rate / plaintext rate: {mp / mt:.2f}")
PY
