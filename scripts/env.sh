# Sourced by the other scripts: installs what a fresh machine lacks and picks the build cache.
# A fresh machine has the Rust toolchain, gcc and Python; the RocksDB bindings also need clang.
set -euo pipefail

# Go is for the Go package (go/, over the C ABI); a machine without it gets Debian's.
need=()
for pkg in clang libclang-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v go >/dev/null 2>&1 || need+=(golang-go)
# nginx: the static web server the snapshot tests bootstrap from.
[ -x "${ARBOR_NGINX:-/usr/sbin/nginx}" ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (for the RocksDB bindings, the Go package and the snapshot tests)" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update >/dev/null
    $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null
  }
fi

# Build outside the clone so fresh clones (CI, new sessions) reuse compiled RocksDB: its C++
# takes ~18 minutes on a 2-core machine. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/arbor/target}"
mkdir -p "$CARGO_TARGET_DIR"
export ARBOR_BIN="$CARGO_TARGET_DIR/release/arbor"
# Where cgo finds libarbor_ffi.a: a copy without debug sections that `stage_ffi` makes after a
# build (78 MB instead of 1.4 GB: the release profile keeps line tables, and the archive holds
# all of RocksDB), so Go links in seconds.
export ARBOR_CGO_DIR="$CARGO_TARGET_DIR/cgo"
export CGO_LDFLAGS="-L$ARBOR_CGO_DIR${CGO_LDFLAGS:+ $CGO_LDFLAGS}"

# Copies the freshly built static library for cgo, without its debug sections.
stage_ffi() {
  mkdir -p "$ARBOR_CGO_DIR"
  strip --strip-debug -o "$ARBOR_CGO_DIR/libarbor_ffi.a.tmp" "$CARGO_TARGET_DIR/release/libarbor_ffi.a"
  mv "$ARBOR_CGO_DIR/libarbor_ffi.a.tmp" "$ARBOR_CGO_DIR/libarbor_ffi.a"
}

# The shared cache keeps every build's leaf outputs: test, bench and example executables and the
# static library, hundreds of MB each with line tables. A clone at another path (CI, a fresh
# clone) builds its own and never reuses another's, so they pile up (55 GB filled this
# machine's disk once, and again with ten 440 MB `arbor` binaries made within a few hours).
# Keeps the newest two of each name; drops the others once ten minutes old (a build running
# beside this one has run its fresh executables by then).
# Libraries (.rlib), which a later build may reuse, are never touched.
prune_cache() {
  local deps="$CARGO_TARGET_DIR/release/deps"
  [ -d "$deps" ] || return 0
  python3 - "$deps" <<'PY'
import collections, os, sys, time
deps, now = sys.argv[1], time.time()
groups = collections.defaultdict(list)
for name in os.listdir(deps):
    path = os.path.join(deps, name)
    if not os.path.isfile(path) or "-" not in name:
        continue
    leaf = name.endswith(".a") or ("." not in name and os.access(path, os.X_OK))
    if leaf:
        groups[name.rsplit("-", 1)[0]].append((os.path.getmtime(path), path))
freed = 0
for files in groups.values():
    files.sort(reverse=True)
    for mtime, path in files[2:]:
        if now - mtime > 600:
            freed += os.path.getsize(path)
            os.remove(path)
if freed:
    print(f"cache: pruned {freed / 1e9:.1f} GB of old executables and static libraries", file=sys.stderr)
PY
}

# The servers the snapshot tests publish to and bootstrap from: nginx (Debian's, above) and an
# S3 server, Versity's S3 gateway (Apache-2.0, maintained) over a plain directory, built from the
# Go module proxy into the cache on first use.
export ARBOR_NGINX="${ARBOR_NGINX:-/usr/sbin/nginx}"
export ARBOR_VERSITYGW="${ARBOR_VERSITYGW:-$HOME/.cache/arbor/bin/versitygw}"
ensure_versitygw() {
  [ -x "$ARBOR_VERSITYGW" ] && return 0
  echo "setup: building versitygw v1.8.0 (the S3 server of the snapshot tests) from the Go module proxy" >&2
  mkdir -p "$(dirname "$ARBOR_VERSITYGW")"
  local gobin
  gobin="$(mktemp -d)"
  GOBIN="$gobin" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
  mv "$gobin/versitygw" "$ARBOR_VERSITYGW"
  rmdir "$gobin"
}
