#!/usr/bin/env python3
"""The snapshot benchmark's driver (see scripts/bench-snapshot.sh)."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchkit

ARBOR = sys.argv[1]
SIZES = [int(k) for k in sys.argv[2:]] or [1_000_000]
RUNS = int(os.environ.get("ARBOR_SNAPSHOT_RUNS", "3"))
OUT = Path(os.environ.get("ARBOR_SNAPSHOT_OUT", "docs/bench/snapshot.jsonl"))
NGINX = os.environ["ARBOR_NGINX"]
VERSITYGW = os.environ["ARBOR_VERSITYGW"]
TICKS = os.sysconf("SC_CLK_TCK")
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "benchsecret",
          "AWS_REGION": "us-east-1"}


def run(*args, env=None):
    return subprocess.run([ARBOR, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def timed(*args, env=None):
    t = time.monotonic()
    out = run(*args, env=env)
    return time.monotonic() - t, out


def cpu_seconds(pid):
    """User + system CPU time of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_nginx(work, root):
    port = free_port()
    tmp = work / f"nginx-{port}"
    tmp.mkdir()
    conf = tmp / "nginx.conf"
    conf.write_text(f"""daemon off; master_process off; worker_processes 1; pid {tmp}/pid;
error_log {tmp}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    proc = subprocess.Popen([NGINX, "-e", f"{tmp}/error.log", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def start_s3(root):
    port = free_port()
    (root / "bench").mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([VERSITYGW, "--access", S3_ENV["AWS_ACCESS_KEY_ID"], "--secret",
                             S3_ENV["AWS_SECRET_ACCESS_KEY"], "--port", f"127.0.0.1:{port}",
                             "posix", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}


def bootstrap(work, root, server_pid, args, env=None):
    replica = work / "replica"
    shutil.rmtree(replica, ignore_errors=True)
    cpu = cpu_seconds(server_pid)
    seconds, out = timed("sync", "--db", str(replica), "--root", root, "--json",
                         "--progress-ms", "600000", *args, env=env)
    cpu = cpu_seconds(server_pid) - cpu
    done = [json.loads(l) for l in out.splitlines() if '"event":"done"' in l][-1]
    assert done["root"] == root, done
    shutil.rmtree(replica)
    return {"seconds": seconds, "bytes": done["bytes"] + done["snapshot_bytes"],
            "server_cpu": cpu}


def measure(KEYS):
    work = Path(tempfile.mkdtemp(prefix="arbor-bench-snapshot-"))
    try:
        source = work / "source"
        run("load", "--db", str(source), "--keys", str(KEYS))
        root = run("root", "--db", str(source)).split()[0]
        published = work / "published"
        s3root = work / "s3"
        s3, s3_env = start_s3(s3root)
        times = {"export": [], "publish (file)": [], "publish (S3)": []}
        for i in range(RUNS):
            t = time.monotonic()
            with open(os.devnull, "w") as null:
                subprocess.run([ARBOR, "export", "--db", str(source)], check=True, stdout=null)
            times["export"].append(time.monotonic() - t)
            shutil.rmtree(published, ignore_errors=True)
            times["publish (file)"].append(
                timed("snapshot", "publish", "--db", str(source), "--to",
                      f"file://{published}")[0])
            times["publish (S3)"].append(
                timed("snapshot", "publish", "--db", str(source), "--to",
                      f"s3://bench/run{i}", env=s3_env)[0])
        nginx, url = start_nginx(work, published)
        server, addr = benchkit.serve(ARBOR, source)
        ways = {
            "gRPC sync (arbor serve)": (server.pid, ["--peer", f"http://{addr}"], None),
            "snapshot from nginx": (nginx.pid, ["--snapshot", url], None),
            "snapshot from S3 (versitygw)": (s3.pid, ["--snapshot", "s3://bench/run0"], s3_env),
        }
        results = {name: [] for name in ways}
        for _ in range(RUNS):
            for name, (pid, args, env) in ways.items():
                results[name].append(bootstrap(work, root, pid, args, env))
        for proc in (server, nginx, s3):
            proc.terminate()
            proc.wait()
        rows = []
        base = None
        for name, runs in results.items():
            row = {
                "way": name, "keys": KEYS, "runs": RUNS,
                "seconds": statistics.median(r["seconds"] for r in runs),
                "seconds_min": min(r["seconds"] for r in runs),
                "seconds_max": max(r["seconds"] for r in runs),
                "bytes": statistics.median(r["bytes"] for r in runs),
                "server_cpu": statistics.median(r["server_cpu"] for r in runs),
            }
            base = base or row
            row["keys_per_sec"] = KEYS / row["seconds"]
            row["rate_vs_grpc"] = base["seconds"] / row["seconds"]
            row["bytes_vs_grpc"] = row["bytes"] / base["bytes"]
            row["cpu_vs_grpc"] = row["server_cpu"] / max(base["server_cpu"], 1e-9)
            rows.append(row)
        print(f"{KEYS} keys, median of {RUNS} alternating runs (min-max)")
        print("| way | time | keys/s | × gRPC rate | bytes received | × gRPC bytes | "
              "serving CPU | × gRPC CPU |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['way']} | {r['seconds']:.2f} s ({r['seconds_min']:.2f}–"
                  f"{r['seconds_max']:.2f}) | {r['keys_per_sec']:,.0f} | {r['rate_vs_grpc']:.2f} | "
                  f"{r['bytes'] / 1e6:.1f} MB | {r['bytes_vs_grpc']:.3f} | "
                  f"{r['server_cpu']:.2f} s | {r['cpu_vs_grpc']:.3f} |")
        exp = statistics.median(times["export"])
        print()
        print("| step | time | × export |")
        print("|---|---|---|")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"| {name} | {m:.2f} s ({min(ts):.2f}–{max(ts):.2f}) | {m / exp:.2f} |")
            rows.append({"step": name, "keys": KEYS, "seconds": m, "vs_export": m / exp})
        print()
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    rows = [row for keys in SIZES for row in measure(keys)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    # The plot's table: keys/s of each way at each size.
    csv = OUT.with_suffix(".csv")
    lines = ["# Bootstrap of a fresh replica on 127.0.0.1: gRPC sync against snapshots | keys/s",
             "label,value"]
    for r in rows:
        if "way" in r:
            size = f"{r['keys'] / 1e6:g}M"
            lines.append(f"{size} keys: {r['way']},{r['keys_per_sec']:.0f}")
    csv.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
