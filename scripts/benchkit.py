"""Helpers the benchmark drivers share (scripts/bench_*.py)."""
import subprocess


def start_listening(args):
    """Starts a process that prints `listening on ADDR` first (`arbor serve`, `arbor-linkemu`);
    returns it and the address. Its stdout stays a pipe the caller may leave unread: both
    programs print little after that line."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("listening on "):
            return proc, line.split()[-1]
    raise RuntimeError(f"{args[0]} did not start")


def serve(arbor, db, *extra):
    """`arbor serve --db DB` on a free loopback port, with `extra` flags."""
    return start_listening([arbor, "serve", "--db", str(db), "--listen", "127.0.0.1:0", *extra])
