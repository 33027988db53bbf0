#!/usr/bin/env python3
"""The catch-up benchmark's driver (see scripts/bench-catchup.sh). The server's changes are made
offline with `arbor import` in COMMITS commits: 70% new keys, 15% updates, 15% deletes of
existing keys (taken from the low end of the keyspace with `arbor export`)."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

PLOT_ONLY = sys.argv[1] == "--plot"
ARBOR = None if PLOT_ONLY else sys.argv[1]
KEYS = 0 if PLOT_ONLY else int(sys.argv[2])
SHARES = [float(s) for s in os.environ.get("ARBOR_CATCHUP_SHARES", "0.01,0.06,0.25,1").split(",")]
COMMITS = 20
REPEAT = int(os.environ.get("ARBOR_CATCHUP_REPEAT", "3"))
OUT = Path(os.environ.get("ARBOR_CATCHUP_OUT", "docs/bench/catchup.jsonl"))


def run(*args):
    done = subprocess.run([ARBOR, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"arbor {' '.join(args)} failed ({done.returncode}):\n{done.stderr[:3000]}")
    return done.stdout


def serve(db, history, *extra):
    return benchkit.serve(ARBOR, db, "--history", str(history), *extra)


def sync(replica, root, addr):
    t = time.monotonic()
    out = run("sync", "--db", str(replica), "--root", root, "--peer", f"http://{addr}",
              "--json", "--progress-ms", "600000")
    seconds = time.monotonic() - t
    done = [json.loads(l) for l in out.splitlines() if '"event":"done"' in l][-1]
    assert done["root"] == root, done
    return {"seconds": round(seconds, 2), "bytes": done["bytes"],
            "range_bytes": done["range_bytes"], "change_bytes": done["change_bytes"],
            "diff_bytes": done["diff_bytes"]}


def summary(runs):
    """One mode's runs: the first run's bytes (they do not vary), the median time, every time."""
    times = sorted(r["seconds"] for r in runs)
    return {**runs[0], "seconds": times[len(times) // 2], "runs": [r["seconds"] for r in runs]}


def changes(base, share, rng):
    """COMMITS import files changing about share × KEYS keys."""
    total = int(KEYS * share)
    existing_wanted = int(total * 0.3)
    # Keys are uniform over the keyspace: a prefix range holding the wanted count.
    end = min(0xffff, int(0x10000 * existing_wanted / KEYS) + 1)
    existing = [l.split()[0] for l in run("export", "--db", str(base), "--start", "00",
                                          "--end", f"{end:04x}" + "ff" * 30).splitlines()][:existing_wanted]
    ops = []
    for i, key in enumerate(existing):
        ops.append(f"{key} {os.urandom(32).hex()}" if i % 2 == 0 else key)
    ops += [f"{rng.randbytes(32).hex()} {rng.randbytes(32).hex()}" for _ in range(total - len(ops))]
    rng.shuffle(ops)
    per = -(-len(ops) // COMMITS)
    return [ops[i:i + per] for i in range(0, len(ops), per)]


def main():
    rng = random.Random(int(os.environ.get("ARBOR_TEST_SEED", "1")))
    work = Path(tempfile.mkdtemp())
    procs = []
    try:
        base = work / "base"
        run("load", "--db", str(base), "--keys", str(KEYS))
        rows = []
        OUT.write_text("")
        for share in SHARES:
            server = work / "server"
            shutil.rmtree(server, ignore_errors=True)
            shutil.copytree(base, server)
            batches = changes(base, share, rng)
            for batch in batches:
                batch_file = work / "batch"
                batch_file.write_text("\n".join(batch) + "\n")
                root = run("import", "--db", str(server), str(batch_file)).split()[0]
            row = {"keys": KEYS, "share": share, "changed": sum(len(b) for b in batches),
                   "commits": len(batches)}
            runs = {mode: [] for mode in MODES}
            for mode, history in (("within history", COMMITS + 10), ("beyond history", COMMITS // 2)):
                target = root
                if mode == "beyond history":
                    # One more commit under the short history, so the server really drops the
                    # replica's root (history is trimmed as commits land).
                    proc, _ = serve(server, history, "--churn-keys", "1", "--churn-every", "1",
                                    "--churn-commits", "1")
                    time.sleep(1.0)
                    proc.terminate()
                    proc.wait()
                    target = run("root", "--db", str(server)).split()[0]
                proc, addr = serve(server, history)
                procs.append(proc)
                replica = work / "replica"
                # Runs alternate with fresh full syncs of the same target (in the beyond-history
                # pass: the root the catch-up with no history left meets), so the spread of one
                # sitting shows beside the ratios.
                for _ in range(REPEAT):
                    shutil.rmtree(replica, ignore_errors=True)
                    shutil.copytree(base, replica)
                    # The copy's writes reach the disk before the run, not during it.
                    os.sync()
                    runs[mode].append(sync(replica, target, addr))
                    if mode == "beyond history":
                        shutil.rmtree(replica)
                        runs["full sync"].append(sync(replica, target, addr))
                proc.terminate()
                proc.wait()
                procs.remove(proc)
            for mode in MODES:
                row[mode] = summary(runs[mode])
            rows.append(row)
            with OUT.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    if len(rows) > 1:
        draw(rows, OUT.with_suffix(".svg"))
    print(f"{KEYS:,} keys; the server made its changes in {COMMITS} commits")
    print("| keys changed | full sync | within history (change proofs) | beyond history (node diffs, or emptied and fetched whole) | "
          "beyond / within: bytes, time | beyond / full: bytes, time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        spread = lambda m: (f" ({min(r[m]['runs']):.2f}–{max(r[m]['runs']):.2f})"
                            if len(r[m].get("runs", [])) > 1 else "")
        cell = lambda m: f"{r[m]['bytes'] / 1e6:.2f} MB, {r[m]['seconds']:.2f} s{spread(m)}"
        beyond = r["beyond history"]
        ratios = lambda other: (f"{beyond['bytes'] / max(1, r[other]['bytes']):.2f}×, "
                                f"{beyond['seconds'] / max(0.01, r[other]['seconds']):.2f}×")
        print(f"| {r['changed']:,} ({r['share']:.0%}) | {cell('full sync')} | {cell('within history')} | "
              f"{cell('beyond history')} ({beyond['diff_bytes'] / 1e6:.2f} MB diffs, "
              f"{beyond['range_bytes'] / 1e6:.2f} MB range proofs) | {ratios('within history')} | "
              f"{ratios('full sync')} |")


MODES = ("full sync", "within history", "beyond history")


def draw(rows, out):
    """Bytes and seconds against the share of keys changed, one line per way (log scales)."""
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    fig, (bytes_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = {"full sync": "full sync", "within history": "change proofs (within history)",
              "beyond history": "beyond history (node diffs, or fetched whole)"}
    for mode in MODES:
        shares = [r["share"] * 100 for r in rows]
        bytes_ax.plot(shares, [r[mode]["bytes"] / 1e6 for r in rows], marker="o", label=labels[mode])
        time_ax.plot(shares, [r[mode]["seconds"] for r in rows], marker="o", label=labels[mode])
    keys = rows[0].get("keys", "")
    for ax, what in ((bytes_ax, "MB received"), (time_ax, "seconds")):
        ax.set_xscale("log"); ax.set_yscale("log")
        ax.set_xlabel("keys changed (% of the state)"); ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3); ax.legend(fontsize=8)
    bytes_ax.set_title(f"bytes to reach the new root ({keys:,} keys)" if keys else "bytes", fontsize=10)
    time_ax.set_title("time to reach the new root", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, metadata={"Date": None})


if __name__ == "__main__":
    if PLOT_ONLY:
        path = Path(sys.argv[2])
        draw([json.loads(l) for l in path.read_text().splitlines() if l.strip()], path.with_suffix(".svg"))
    else:
        main()
