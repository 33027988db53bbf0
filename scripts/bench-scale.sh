#!/usr/bin/env bash
# Scale benchmark: what a state of each size costs (issue #17). For every size it runs
# `benches/scale.rs` (build the state, then commits of 10k changes in a chain's mix: half
# updates, half new keys, 5% deletes; the same through plain RocksDB puts) and a 1-server
# loopback `arbor sync` of the state into a fresh replica. Prints a Markdown table, writes
# docs/bench/scale.jsonl and draws docs/bench/scale.svg (rate and p99 against state size).
#
#   scripts/bench-scale.sh [SIZE[:sorted] ...]   (default: 1M 10M 100M:sorted; suffixes k, M)
#   CHURN=N changes committed after the build (default 1000000)
#
# `:sorted` builds that state in key order (10k adjacent keys per commit, as a sync or an import
# writes them) instead of 10k random keys per commit: 2.5 minutes at 100M keys instead of more
# than an hour. Both systems build it the same way; everything after the build is measured the
# same way, and the table marks the build rate of such rows.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1M 10M 100M:sorted)
CHURN=${CHURN:-1000000}
cargo build --release --workspace --bins >&2
ARBOR="$CARGO_TARGET_DIR/release/arbor"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
OUT=docs/bench/scale.jsonl
: >"$OUT"

number() { # 10M -> 10000000
    python3 -c "import sys; s=sys.argv[1]; m={'k':10**3,'K':10**3,'M':10**6,'G':10**9}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))" "$1"
}

for spec in "${SIZES[@]}"; do
    size=${spec%%:*}
    build=random
    [ "$spec" = "$size:sorted" ] && build=sorted
    keys=$(number "$size")
    dir="$WORK/$keys"
    echo "== $size keys: build, churn of $CHURN changes, reopen (trie, then plain RocksDB)" >&2
    line=$(cargo bench --bench scale -- --keys "$keys" --churn "$CHURN" --build "$build" --dir "$dir" --keep | tail -1)
    # The baseline's files are measured; the sync below needs room for a replica beside the
    # trie (at 100M keys: 21 GB each), not for them.
    rm -rf "$dir/raw"
    root=$("$ARBOR" root --db "$dir/trie" | head -1)
    out="$WORK/serve-$keys.out"
    "$ARBOR" serve --db "$dir/trie" --listen 127.0.0.1:0 >"$out" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 600); do
        grep -q '^listening on ' "$out" 2>/dev/null && break
        sleep 0.1
    done
    peer=$(sed -n 's/^listening on /http:\/\//p' "$out")
    echo "== $size keys: sync from one server" >&2
    read -r sync_s sync_rss < <(python3 - "$ARBOR" sync --progress-ms 600000 --db "$dir/replica" --peer "$peer" --root "$root" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.monotonic() - t:.2f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
)
    test "$("$ARBOR" root --db "$dir/replica" | head -1)" = "$root"
    kill "${PIDS[-1]}" && wait "${PIDS[-1]}" 2>/dev/null || true
    keys_now=$("$ARBOR" root --db "$dir/replica" | sed -n 2p | grep -o '[0-9]*' | head -1)
    python3 - "$line" "$sync_s" "$sync_rss" "$keys_now" >>"$OUT" <<'PY'
import json, sys
row = json.loads(sys.argv[1])
secs, rss_kib, keys_now = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
row["sync"] = {"keys": keys_now, "seconds": secs, "keys_per_sec": keys_now / secs, "peak_rss_mib": rss_kib / 1024}
print(json.dumps(row))
PY
    rm -rf "$dir"
done

python3 - "$OUT" <<'PY'
import json, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def size(n):
    return f"{n // 10**6}M" if n >= 10**6 else f"{n // 10**3}k"
print("| state | system | build keys/s | churn keys/s | commit p50 / p99 / max | peak RSS (churn) | disk per key | write amp. | reopen | sync keys/s (peak RSS) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    for name, f in (("Arbor", r["trie"]), ("plain RocksDB", r["rocksdb"])):
        sync = f"{r['sync']['keys_per_sec']:,.0f} ({r['sync']['peak_rss_mib']:.0f} MiB)" if name == "Arbor" else "—"
        built = " (in key order)" if r.get("build") == "sorted" else ""
        print(f"| {size(r['keys'])} | {name} | {f['build_keys_per_sec']:,.0f}{built} | {f['churn_keys_per_sec']:,.0f} | "
              f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} / {f['max_ms']:.1f} ms | {f['churn_peak_rss_mib']:,.0f} MiB | "
              f"{f['disk_bytes_per_key']:.0f} B | {f['write_amplification']:.1f} | {f['reopen_secs']:.2f} s | {sync} |")
try:
    import matplotlib
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
keys = [r["keys"] for r in rows]
fig, (rate, p99) = plt.subplots(1, 2, figsize=(10, 3.8))
for name, label in (("trie", "Arbor"), ("rocksdb", "plain RocksDB")):
    rate.plot(keys, [r[name]["churn_keys_per_sec"] for r in rows], marker="o", label=label)
    p99.plot(keys, [r[name]["p99_ms"] for r in rows], marker="o", label=label)
rate.plot(keys, [r["sync"]["keys_per_sec"] for r in rows], marker="s", label="Arbor sync (1 server)")
for ax, title, unit in ((rate, "sustained rate of 10k-key commits", "keys/s"), (p99, "p99 latency of one commit", "ms")):
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("keys in the state"); ax.set_ylabel(unit)
    ax.set_title(title, fontsize=10); ax.grid(True, which="both", alpha=0.3); ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("docs/bench/scale.svg", metadata={"Date": None})
print("\nwrote docs/bench/scale.jsonl and docs/bench/scale.svg", file=sys.stderr)
PY
