#!/usr/bin/env python3
"""The WAN benchmark's driver (see scripts/bench-wan.sh): real `arbor serve` processes, one
`arbor-linkemu` per server in front of it, `arbor sync --root --json` through the links. Cases
named "TLS" reach a server serving TLS (a certificate made with openssl for the run): the same
transport through the same links."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import start_listening as start

BIN = Path(sys.argv[1])
KEYS = int(sys.argv[2])
ARBOR, LINKEMU = str(BIN / "arbor"), str(BIN / "arbor-linkemu")
OUT = Path(os.environ.get("ARBOR_WAN_OUT", "docs/bench/wan.jsonl"))

# (name, [(rtt_ms, mbit or None) per server])
CASES = [(f"{rtt} ms, 1 server", [(rtt, None)]) for rtt in (0, 25, 50, 100, 200, 400)]
CASES += [(f"{rtt} ms, 3 servers", [(rtt, None)] * 3) for rtt in (0, 100, 200)]
CASES += [(f"100 ms, {mbit} Mbit/s, 1 server", [(100, mbit)]) for mbit in (10, 100, 1000)]
CASES += [(f"{rtt} ms, 1 server, TLS", [(rtt, None)]) for rtt in (0, 200)]
# Two equal narrow peers: the links, not the CPU, are the bottleneck, so two should be ~2x one.
CASES += [("100 ms, 100 Mbit/s, 2 servers", [(100, 100)] * 2)]
# The mixed set against its fast peer alone: a ratio of two runs, so each is run five times,
# alternating, and the median reported (one run of either moves by up to 10% on this machine).
# The narrow set: two far peers that carry one answer in over a second each hold requests
# queued on their links for the whole sync; the fast peer must not wait for them at the tail.
MIXED = [("mixed: 20 ms 1 Gbit/s + 150 ms 100 Mbit/s + 300 ms 10 Mbit/s",
          [(20, 1000), (150, 100), (300, 10)]),
         ("narrow: 20 ms 1 Gbit/s + 2 x 300 ms 1 Mbit/s", [(20, 1000), (300, 1), (300, 1)]),
         ("fast peer alone: 20 ms 1 Gbit/s", [(20, 1000)])]
CASES += MIXED * 5
# Loopback again at the end: the reference rate is the mean of both loopback runs, so one
# disturbed run does not skew every share. A first, unrecorded run warms the page cache.
CASES += [("0 ms, 1 server (again)", [(0, None)])]
CASES = [("warm-up", [(0, None)])] + CASES
# ARBOR_WAN_ONLY=a,b runs only the cases whose names contain one of these (for A/B runs).
if os.environ.get("ARBOR_WAN_ONLY"):
    wanted = os.environ["ARBOR_WAN_ONLY"].split(",")
    CASES = [c for c in CASES if c[0] == "warm-up" or any(w in c[0] for w in wanted)]


def main():
    work = Path(tempfile.mkdtemp())
    procs = []
    try:
        root = subprocess.run([ARBOR, "load", "--db", str(work / "s0"), "--keys", str(KEYS)],
                              check=True, capture_output=True, text=True).stdout.split()[0]
        # Copies first: a serving database compacts its files.
        for i in (1, 2, 3):
            shutil.copytree(work / "s0", work / f"s{i}")
        servers = []
        for i in range(3):
            proc, addr = start([ARBOR, "serve", "--db", str(work / f"s{i}"), "--listen", "127.0.0.1:0"])
            procs.append(proc)
            servers.append(addr)
        ca = make_certificate(work)
        proc, tls_server = start([ARBOR, "serve", "--db", str(work / "s3"), "--listen", "127.0.0.1:0",
                                  "--tls-cert", str(work / "tls.pem"), "--tls-key", str(work / "tls.key")])
        procs.append(proc)
        rows = []
        for name, links in CASES:
            tls = name.endswith("TLS")
            emus = []
            for (rtt, mbit), server in zip(links, [tls_server] if tls else servers):
                args = [LINKEMU, "--listen", "127.0.0.1:0", "--to", server, "--rtt-ms", str(rtt)]
                if mbit:
                    args += ["--mbit", str(mbit)]
                emus.append(start(args))
            scheme = "https" if tls else "http"
            peers = [a for _, addr in emus for a in ("--peer", f"{scheme}://{addr}")]
            if tls:
                peers += ["--ca", str(ca)]
            client = work / "client"
            shutil.rmtree(client, ignore_errors=True)
            t = time.monotonic()
            out = subprocess.run([ARBOR, "sync", "--db", str(client), "--root", root, "--json",
                                  "--progress-ms", "600000", *peers],
                                 check=True, capture_output=True, text=True).stdout
            seconds = time.monotonic() - t
            for proc, _ in emus:
                proc.terminate()
                proc.wait()
            done = [json.loads(l) for l in out.splitlines() if '"event":"done"' in l][-1]
            assert done["root"] == root
            goodput = done["bytes"] / seconds
            capped = [m for _, m in links if m]
            capacity = sum(m * 1e6 / 8 for m in capped) if len(capped) == len(links) else None
            row = {"case": name, "links": links, "seconds": round(seconds, 2),
                   "keys_per_sec": round(KEYS / seconds), "bytes": done["bytes"],
                   "goodput_mb_s": round(goodput / 1e6, 2),
                   "utilisation": round(goodput / capacity, 3) if capacity else None,
                   "answers": [p["answers"] for p in done["peers"]]}
            if name == "warm-up":
                continue
            rows.append(row)
            print(f"{name}: {seconds:.2f} s, {row['keys_per_sec']:,} keys/s, "
                  f"{row['goodput_mb_s']} MB/s, answers per peer {row['answers']}", file=sys.stderr)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    rows = medians(rows)
    with OUT.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    report(rows)


def make_certificate(work):
    """A CA and a certificate for 127.0.0.1 signed by it (`tls.pem`, `tls.key` in `work`);
    returns the CA's path."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=bench-ca",
            "-keyout", str(work / "ca.key"), "-out", str(work / "ca.pem"))
    openssl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(work / "tls.key"),
            "-out", str(work / "tls.csr"))
    (work / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(work / "tls.csr"), "-CA", str(work / "ca.pem"),
            "-CAkey", str(work / "ca.key"), "-CAcreateserial", "-days", "1",
            "-extfile", str(work / "ext"), "-out", str(work / "tls.pem"))
    return work / "ca.pem"


def medians(rows):
    """One row per case: a case run several times is reported by its median run, with the
    times of all its runs in `runs`."""
    by_case = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    out = []
    for case, runs in by_case.items():
        if len(runs) == 1:
            out.append(runs[0])
            continue
        median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        out.append(dict(median, case=f"{case} (median of {len(runs)})",
                        runs=[r["seconds"] for r in runs]))
    return out


def report(rows):
    loopbacks = [r["seconds"] for r in rows
                 if r["case"] in ("0 ms, 1 server", "0 ms, 1 server (again)")]
    loopback = statistics.mean(loopbacks) if loopbacks else rows[0]["seconds"]
    print(f"loopback reference: mean of {loopbacks} = {loopback:.2f} s")
    print("| case | seconds | keys/s | goodput | share of loopback rate | utilisation | answers per peer |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        util = f"{r['utilisation']:.2f}" if r["utilisation"] is not None else "—"
        runs = f" (runs: {', '.join(f'{x:.2f}' for x in r['runs'])} s)" if "runs" in r else ""
        print(f"| {r['case']}{runs} | {r['seconds']:.2f} | {r['keys_per_sec']:,} | {r['goodput_mb_s']} MB/s | "
              f"{loopback / r['seconds']:.2f} | {util} | {r['answers']} |")
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("svg")
    import matplotlib.pyplot as plt
    fig, (rtt_ax, bw_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, servers, tls in (("1 server", 1, False), ("3 servers", 3, False),
                                ("1 server, TLS", 1, True)):
        pts = [(r["links"][0][0], r["goodput_mb_s"]) for r in rows
               if len(r["links"]) == servers and r["links"][0][1] is None
               and r["case"].endswith("TLS") == tls and "again" not in r["case"]]
        rtt_ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    rtt_ax.set_xlabel("round trip (ms)"); rtt_ax.set_ylabel("goodput (MB/s)")
    rtt_ax.set_title("goodput against round trip (unbounded bandwidth)", fontsize=10)
    rtt_ax.legend(fontsize=8); rtt_ax.grid(True, alpha=0.3)
    capped = [r for r in rows if len(r["links"]) == 1 and r["links"][0][1]
              and r["case"].startswith("100 ms")]
    bw_ax.plot([r["links"][0][1] for r in capped], [r["utilisation"] for r in capped], marker="o")
    bw_ax.set_xscale("log"); bw_ax.set_ylim(0, 1.05)
    bw_ax.set_xlabel("link bandwidth (Mbit/s), 100 ms round trip"); bw_ax.set_ylabel("utilisation")
    bw_ax.set_title("link utilisation against bandwidth", fontsize=10); bw_ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT.with_suffix(".svg"), metadata={"Date": None})


if __name__ == "__main__":
    main()
