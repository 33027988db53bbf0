# Sourced by the other scripts: installs what a fresh machine lacks and picks the build cache.
# A fresh machine has the Rust toolchain, gcc and Python; the RocksDB bindings also need clang.
set -euo pipefail

# Go is for the Go package (go/, over the C ABI); a machine without it gets Debian's.
need=()
for pkg in clang libclang-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v go >/dev/null 2>&1 || need+=(golang-go)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (for the RocksDB bindings and the Go package)" >&2
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
# Where cgo finds libarbor_ffi.a (built by `cargo build --release -p arbor-ffi`).
export CGO_LDFLAGS="-L$CARGO_TARGET_DIR/release${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
